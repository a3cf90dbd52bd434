"""Helpers for the ephemeral-event tests: typing, receipts and read markers over HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, invite, join, room_path


def sync(api: MatrixTestClient, who: Persona, since: str | None = None) -> dict[str, Any]:
    """One GET /sync (initial, or incremental from ``since``) without waiting."""
    path = "sync?timeout=0" + (f"&since={quote(since, safe='')}" if since else "")
    response = api.get(path, token=who.access_token)
    assert response.status == 200, (response.status, response.body)
    body: dict[str, Any] = response.body
    return body


def ephemeral(body: dict[str, Any], room: str, event_type: str) -> list[dict[str, Any]]:
    """The ephemeral events of ``event_type`` in a joined room of a sync body."""
    room_body = body.get("rooms", {}).get("join", {}).get(room, {})
    events: list[dict[str, Any]] = room_body.get("ephemeral", {}).get("events", [])
    return [e for e in events if e["type"] == event_type]


def shared_room(api: MatrixTestClient, owner: Persona, *others: Persona) -> str:
    room = create_room(api, owner)
    for other in others:
        invite(api, owner, room, other)
        join(api, other, room)
    return room


def set_typing(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    typing: bool = True,
    *,
    timeout: int | None = 30000,
    user_id: str | None = None,
) -> Response:
    body: dict[str, Any] = {"typing": typing}
    if timeout is not None:
        body["timeout"] = timeout
    return api.put(room_path(room, "typing", user_id or who.user_id), body, token=who.access_token)


def send_receipt(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    event_id: str,
    receipt_type: str = "m.read",
    **body: Any,
) -> Response:
    return api.post(
        room_path(room, "receipt", receipt_type, event_id), body, token=who.access_token
    )
