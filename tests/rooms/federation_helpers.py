"""Requests from remote servers (tests/graph/remote.py's RemoteServer) to this server's
federation endpoints, signed with X-Matrix as the remote server would sign them."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from protocol.auth_rules import auth_types_for_event
from protocol.hashing import add_content_hash
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.x_matrix import format_authorization, sign_request
from rooms.models import CurrentState, Event, ForwardExtremity, Room
from tests.conftest import MatrixTestClient, Response
from tests.graph.remote import RemoteServer

F = "/_matrix/federation/v1"


def fed(
    api: MatrixTestClient,
    server: RemoteServer | None,
    method: str,
    path: str,
    body: Any = None,
) -> Response:
    """``method path`` (unencoded: the IDs used here need no escaping) from ``server``,
    signed by it; unsigned when ``server`` is None."""
    headers = {}
    if server is not None:
        auth = sign_request(
            server.signing_key, method, path, server.server_name, settings.SERVER_NAME, body
        )
        headers["Authorization"] = format_authorization(auth)
    response = api.client.generic(
        method,
        path,
        data=json.dumps(body) if body is not None else "",
        content_type="application/json",
        headers=headers,
        RAW_URI=path,
    )
    content = response.content
    return Response(response.status_code, json.loads(content) if content else None, {})


def remote_pdu(
    room_id: str,
    server: RemoteServer,
    sender: str,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None = None,
) -> dict[str, Any]:
    """An event of ``sender`` (a user of ``server``) in a room stored here, on the room's
    current tips and state, hashed and signed by ``server`` as it would send it."""
    room = Room.objects.get(room_id=room_id)
    version = KNOWN_ROOM_VERSIONS[room.room_version]
    state = {
        (t, k): e
        for t, k, e in CurrentState.objects.filter(room=room).values_list(
            "type", "state_key", "event_id"
        )
    }
    keys = auth_types_for_event(version, event_type, sender, state_key, content)
    prev = list(ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True))
    depth = max(Event.objects.filter(event_id__in=prev).values_list("depth", flat=True)) + 1
    pdu: dict[str, Any] = {
        "type": event_type,
        "room_id": room_id,
        "sender": sender,
        "content": content,
        "origin_server_ts": 1_800_000_000_000,
        "depth": depth,
        "prev_events": prev,
        "auth_events": sorted(state[key] for key in keys if key in state),
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    return server.sign(add_content_hash(pdu), version)
