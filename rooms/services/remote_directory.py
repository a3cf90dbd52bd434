"""Another server's room aliases, asked of that server (Server-Server API, "Querying
for information": GET /_matrix/federation/v1/query/directory)."""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from federation.client import FederationError, send_request
from protocol.errors import MatrixError, not_found
from protocol.identifiers import is_valid_room_id, is_valid_server_name, parse_room_alias

logger = logging.getLogger(__name__)

# At most this many of the servers an answer names are kept.
MAX_SERVERS = 50


def query_remote_alias(alias: str) -> tuple[str, list[str]]:
    """The room ID an alias of another server points at, and the servers that server
    says are in the room. 404 M_NOT_FOUND when that server does not know the alias;
    502 M_UNKNOWN when it cannot be asked or answers with something else."""
    domain = parse_room_alias(alias).domain
    path = "/_matrix/federation/v1/query/directory?" + urlencode({"room_alias": alias})
    try:
        response = send_request(domain, "GET", path)
    except FederationError as exc:
        logger.info("alias %s: %s", alias, exc)
        raise _unresolved(alias, "could not be reached") from None
    if response.status == 404:
        raise not_found(f"Room alias {alias} not found")
    if response.status != 200:
        raise _unresolved(alias, f"answered {response.status}")
    try:
        answer = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _unresolved(alias, "answered with something that is not JSON") from None
    room_id = answer.get("room_id") if isinstance(answer, dict) else None
    if not isinstance(room_id, str) or not is_valid_room_id(room_id):
        raise _unresolved(alias, "answered without a room ID")
    servers = answer.get("servers")
    if not isinstance(servers, list):
        raise _unresolved(alias, "answered without a list of servers")
    named = [
        server for server in servers if isinstance(server, str) and is_valid_server_name(server)
    ]
    return room_id, list(dict.fromkeys(named))[:MAX_SERVERS]


def _unresolved(alias: str, why: str) -> MatrixError:
    return MatrixError(
        "M_UNKNOWN", f"The server of {alias} {why}; the alias cannot be resolved", status=502
    )
