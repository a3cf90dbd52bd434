"""Queries to other servers on behalf of our clients (Server-Server API, "Querying for
information"): a remote user's profile (GET /_matrix/federation/v1/query/profile).

The remote answer is checked and its failures mapped to the client's errors as Synapse
maps them: the server cannot be reached, or answers anything but a profile or a 404, is
502; its 404 is ours.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlencode

from federation import client
from protocol.errors import MatrixError, not_found
from protocol.identifiers import parse_user_id

logger = logging.getLogger(__name__)

QUERY_PROFILE = "/_matrix/federation/v1/query/profile"
# Fields whose type the spec fixes: a value of another type is left out.
_STRING_FIELDS = ("displayname", "avatar_url", "m.tz")


def query_remote_profile(user_id: str, field: str | None = None) -> dict[str, Any]:
    """The profile of a user of another server (only ``field``, if given)."""
    params = {"user_id": user_id, **({"field": field} if field is not None else {})}
    path = f"{QUERY_PROFILE}?{urlencode(params, quote_via=quote)}"
    server = parse_user_id(user_id).domain
    try:
        answer = client.request_json(server, "GET", path)
    except client.FederationError as exc:
        logger.info("profile of %s: %s", user_id, exc)
        if exc.status == 404:
            raise not_found("Profile not found") from None
        raise MatrixError("M_UNKNOWN", "Failed to fetch profile", status=502) from None
    if not isinstance(answer, dict):
        raise MatrixError("M_UNKNOWN", "Failed to fetch profile", status=502)
    profile = {
        key: value
        for key, value in answer.items()
        if key not in _STRING_FIELDS or value is None or isinstance(value, str)
    }
    if field is not None:
        return {field: profile[field]} if field in profile else {}
    return profile
