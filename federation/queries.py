"""Queries to other servers on behalf of our clients (Server-Server API, "Querying for
information"): a remote user's profile (GET /_matrix/federation/v1/query/profile).

The remote answer is checked and its failures mapped to the client's errors as Synapse
maps them: the server cannot be reached, or answers anything but a profile or a 404, is
502; its 404 is ours. An answer (a profile, or a 404) is kept for PROFILE_CACHE_S in the
cache, per user and field, so a client showing a remote user's name and avatar over and
over does not ask their server each time; a failure is not kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

from django.core.cache import cache

from federation import client
from protocol.errors import MatrixError, not_found
from protocol.identifiers import parse_user_id

logger = logging.getLogger(__name__)

QUERY_PROFILE = "/_matrix/federation/v1/query/profile"
# Fields whose type the spec fixes: a value of another type is left out.
_STRING_FIELDS = ("displayname", "avatar_url", "m.tz")
# How long an answer is believed: a profile change reaches rooms as a member event at
# once, and GET /profile within this.
PROFILE_CACHE_S = 60
_NOT_FOUND = "not found"


def _cache_key(user_id: str, field: str | None) -> str:
    digest = hashlib.sha256(json.dumps([user_id, field]).encode()).hexdigest()
    return f"federation-profile:{digest}"


def query_remote_profile(user_id: str, field: str | None = None) -> dict[str, Any]:
    """The profile of a user of another server (only ``field``, if given), from the
    cache when it was asked for within PROFILE_CACHE_S."""
    key = _cache_key(user_id, field)
    cached = cache.get(key)
    if cached == _NOT_FOUND:
        raise not_found("Profile not found")
    if isinstance(cached, dict):
        return dict(cached)
    try:
        profile = _ask(user_id, field)
    except MatrixError as exc:
        if exc.errcode == "M_NOT_FOUND":
            cache.set(key, _NOT_FOUND, PROFILE_CACHE_S)
        raise
    cache.set(key, profile, PROFILE_CACHE_S)
    return profile


def _ask(user_id: str, field: str | None) -> dict[str, Any]:
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
