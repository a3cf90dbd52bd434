"""Room aliases of other servers, resolved by asking them (Server-Server API, GET
/_matrix/federation/v1/query/directory) for our clients' GET /directory/room/{roomAlias}.

Failures are mapped as Synapse maps them: the alias's server answering 404 is our 404
M_NOT_FOUND; a server that cannot be reached, answers another error or something that is
not an alias mapping is 502.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from federation import client
from protocol.errors import MatrixError, not_found
from protocol.identifiers import is_valid_room_id, is_valid_server_name
from rooms.services.aliases import parse_alias

logger = logging.getLogger(__name__)

QUERY_DIRECTORY = "/_matrix/federation/v1/query/directory"


def _failed() -> MatrixError:
    return MatrixError("M_UNKNOWN", "Failed to fetch alias", status=502)


def query_remote_alias(alias: str) -> tuple[str, list[str]]:
    """The room ID an alias of another server names, and the servers its server says
    are in the room."""
    parsed = parse_alias(alias)
    path = f"{QUERY_DIRECTORY}?{urlencode({'room_alias': str(parsed)}, quote_via=quote)}"
    try:
        answer = client.request_json(parsed.domain, "GET", path)
    except client.FederationError as exc:
        logger.info("alias %s: %s", alias, exc)
        if exc.status == 404:
            raise not_found(f"Room alias {parsed} not found") from None
        raise _failed() from None
    room_id = answer.get("room_id") if isinstance(answer, dict) else None
    servers = answer.get("servers") if isinstance(answer, dict) else None
    if not isinstance(room_id, str) or not is_valid_room_id(room_id):
        raise _failed()
    if not isinstance(servers, list):
        raise _failed()
    return room_id, [s for s in servers if isinstance(s, str) and is_valid_server_name(s)]
