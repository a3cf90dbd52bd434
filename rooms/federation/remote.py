"""Asking other servers about rooms for our clients: another server's published room
directory (GET/POST /_matrix/federation/v1/publicRooms) and the space hierarchy of rooms
this server is not in (GET /_matrix/federation/v1/hierarchy/{roomId}).

What another server answers is checked before a client sees it: malformed entries are
left out, and a server that cannot be reached or answers with an error is our client's
502 (as Synapse answers), never the remote error passed through.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from django.core.cache import cache

from federation import client
from protocol.errors import MatrixError
from protocol.identifiers import is_valid_room_id
from rooms.services.directory import PublicRoomsQuery

logger = logging.getLogger(__name__)

PUBLIC_ROOMS = "/_matrix/federation/v1/publicRooms"

# The fields of a directory entry (public_rooms_chunk.yaml), with their JSON types.
_CHUNK_REQUIRED: dict[str, type] = {
    "room_id": str,
    "num_joined_members": int,
    "world_readable": bool,
    "guest_can_join": bool,
}
_CHUNK_OPTIONAL: dict[str, type] = {
    "name": str,
    "topic": str,
    "canonical_alias": str,
    "avatar_url": str,
    "join_rule": str,
    "room_type": str,
}


def _is(value: object, kind: type) -> bool:
    # bool is an int in Python; JSON keeps them apart.
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def checked_chunk(entry: object) -> dict[str, Any] | None:
    """A remote directory entry with only the spec's fields, each of its type; None if
    a required field is missing or wrong, or the room ID is not one."""
    if not isinstance(entry, dict):
        return None
    if not all(_is(entry.get(key), kind) for key, kind in _CHUNK_REQUIRED.items()):
        return None
    if not is_valid_room_id(entry["room_id"]):
        return None
    chunk = {key: entry[key] for key in _CHUNK_REQUIRED}
    chunk.update(
        {
            key: entry[key]
            for key, kind in _CHUNK_OPTIONAL.items()
            if key in entry and _is(entry[key], kind)
        }
    )
    return chunk


def _room_list_failed() -> MatrixError:
    return MatrixError("M_UNKNOWN", "Failed to fetch room list", status=502)


def _checked_room_list(answer: object) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("chunk"), list):
        raise _room_list_failed()
    chunks = [c for c in map(checked_chunk, answer["chunk"]) if c is not None]
    response: dict[str, Any] = {"chunk": chunks}
    for token in ("next_batch", "prev_batch"):
        if isinstance(answer.get(token), str):
            response[token] = answer[token]
    estimate = answer.get("total_room_count_estimate")
    if _is(estimate, int):
        response["total_room_count_estimate"] = estimate
    return response


def _matches(chunk: dict[str, Any], query: PublicRoomsQuery) -> bool:
    """The query's filter applied here, for a server that cannot filter."""
    if query.room_types is not None and chunk.get("room_type") not in query.room_types:
        return False
    term = (query.generic_search_term or "").strip().lower()
    fields = ("name", "topic", "canonical_alias")
    return not term or any(term in chunk.get(key, "").lower() for key in fields)


def _get_room_list(server: str, query: PublicRoomsQuery, *, paginated: bool) -> Any:
    params: dict[str, str] = {}
    if paginated and query.limit:
        params["limit"] = str(query.limit)
    if paginated and query.since is not None:
        params["since"] = query.since
    if query.include_all_networks:
        params["include_all_networks"] = "true"
    if query.third_party_instance_id is not None:
        params["third_party_instance_id"] = query.third_party_instance_id
    path = PUBLIC_ROOMS + (f"?{urlencode(params, quote_via=quote)}" if params else "")
    return client.request_json(server, "GET", path)


def _post_room_list(server: str, query: PublicRoomsQuery) -> Any:
    search_filter: dict[str, Any] = {}
    if query.generic_search_term is not None:
        search_filter["generic_search_term"] = query.generic_search_term
    if query.room_types is not None:
        search_filter["room_types"] = list(query.room_types)
    body: dict[str, Any] = {"filter": search_filter}
    if query.limit:
        body["limit"] = query.limit
    if query.since is not None:
        body["since"] = query.since
    if query.include_all_networks:
        body["include_all_networks"] = True
    if query.third_party_instance_id is not None:
        body["third_party_instance_id"] = query.third_party_instance_id
    return client.request_json(server, "POST", PUBLIC_ROOMS, content=body)


def public_rooms(query: PublicRoomsQuery) -> dict[str, Any]:
    """GET and POST /publicRooms?server=...: the other server's published rooms.

    A filtered query is sent as POST; a server that does not know the filtered form
    (it answers 400, 404 or 405) is asked for its whole list, filtered here, without
    pagination (as Synapse falls back).
    """
    assert query.server is not None
    server = query.server
    try:
        if not query.is_filtered:
            return _checked_room_list(_get_room_list(server, query, paginated=True))
        try:
            return _checked_room_list(_post_room_list(server, query))
        except client.FederationError as exc:
            if exc.status not in (400, 404, 405):
                raise
        whole = _checked_room_list(_get_room_list(server, query, paginated=False))
        return {"chunk": [c for c in whole["chunk"] if _matches(c, query)]}
    except client.FederationError as exc:
        logger.info("publicRooms of %s: %s", server, exc)
        raise _room_list_failed() from None


# --- The space hierarchy ---------------------------------------------------------------

HIERARCHY = "/_matrix/federation/v1/hierarchy/"
# How long an answer (or a failure to get one) is kept: "Responses to this endpoint
# should be cached for a period of time" (space_hierarchy.yaml).
HIERARCHY_CACHE_S = 60


@dataclass(frozen=True)
class RemoteSpace:
    """A checked answer of GET /hierarchy/{roomId}: the room's summary with its
    ``children_state``, the summaries of its children the server gave (by room ID, each
    with its own ``children_state``, possibly empty) and the children it says we cannot
    reach."""

    room: dict[str, Any]
    children: dict[str, dict[str, Any]]
    inaccessible_children: frozenset[str]


def _checked_stripped_child(event: object) -> dict[str, Any] | None:
    if not isinstance(event, dict) or event.get("type") != "m.space.child":
        return None
    fields = {
        "state_key": str,
        "sender": str,
        "content": dict,
        "origin_server_ts": int,
    }
    if not all(_is(event.get(key), kind) for key, kind in fields.items()):
        return None
    return {"type": "m.space.child", **{key: event[key] for key in fields}}


def _checked_summary(entry: object) -> dict[str, Any] | None:
    """A room summary (room_summary.yaml) with its ``children_state``, checked."""
    chunk = checked_chunk(entry)
    if chunk is None:
        return None
    assert isinstance(entry, dict)
    for key in ("room_version", "encryption"):
        if isinstance(entry.get(key), str):
            chunk[key] = entry[key]
    allowed = entry.get("allowed_room_ids")
    if isinstance(allowed, list):
        chunk["allowed_room_ids"] = [r for r in allowed if isinstance(r, str)]
    state = entry.get("children_state")
    events = state if isinstance(state, list) else []
    chunk["children_state"] = [e for e in map(_checked_stripped_child, events) if e is not None]
    return chunk


def _checked_space(answer: object, room_id: str) -> RemoteSpace | None:
    if not isinstance(answer, dict):
        return None
    room = _checked_summary(answer.get("room"))
    if room is None or room["room_id"] != room_id:
        return None
    children: dict[str, dict[str, Any]] = {}
    listed = answer.get("children")
    for entry in listed if isinstance(listed, list) else []:
        child = _checked_summary(entry)
        if child is not None and child["room_id"] != room_id:
            children.setdefault(child["room_id"], child)
    inaccessible = answer.get("inaccessible_children")
    return RemoteSpace(
        room,
        children,
        frozenset(r for r in inaccessible if isinstance(r, str))
        if isinstance(inaccessible, list)
        else frozenset(),
    )


def _hierarchy_cache_key(room_id: str, suggested_only: bool) -> str:
    digest = hashlib.sha256(room_id.encode("utf-8")).hexdigest()
    return f"rooms:remote-hierarchy:{digest}:{int(suggested_only)}"


def space_hierarchy(room_id: str, via: Iterable[str], suggested_only: bool) -> RemoteSpace | None:
    """The room's summary and children as one of the ``via`` servers (tried in turn)
    answers GET /hierarchy/{roomId}; None if none of them does. Kept for
    HIERARCHY_CACHE_S seconds, failures too."""
    key = _hierarchy_cache_key(room_id, suggested_only)
    cached = cache.get(key)
    if cached is not None:
        return cached.get("space")
    found: RemoteSpace | None = None
    flag = "true" if suggested_only else "false"
    path = f"{HIERARCHY}{quote(room_id, safe='')}?suggested_only={flag}"
    for server in via:
        try:
            found = _checked_space(client.request_json(server, "GET", path), room_id)
        except client.FederationError as exc:
            logger.info("hierarchy of %s from %s: %s", room_id, server, exc)
            continue
        if found is not None:
            break
        logger.info("hierarchy of %s from %s: a malformed answer", room_id, server)
    cache.set(key, {"space": found}, HIERARCHY_CACHE_S)
    return found
