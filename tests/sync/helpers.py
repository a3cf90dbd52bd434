"""/sync helpers for the HTTP tests.

``sync`` makes one GET /sync as a persona and returns the body (asserting 200);
the small readers below pull the parts a test usually checks out of a body.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.conftest import MatrixTestClient, Persona, Response


def sync_response(
    api: MatrixTestClient, who: Persona, *, token: str | None = None, **params: Any
) -> Response:
    """GET /sync with query parameters; a ``filter`` dict is sent as inline JSON."""
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    for key, value in list(params.items()):
        if isinstance(value, bool):
            params[key] = "true" if value else "false"
    query = urlencode(params)
    return api.get("sync" + (f"?{query}" if query else ""), token=token or who.access_token)


def sync(api: MatrixTestClient, who: Persona, **params: Any) -> dict[str, Any]:
    response = sync_response(api, who, **params)
    assert response.status == 200, (response.status, response.body)
    body: dict[str, Any] = response.body
    return body


def joined(body: dict[str, Any]) -> dict[str, Any]:
    rooms: dict[str, Any] = body.get("rooms", {}).get("join", {})
    return rooms


def section(body: dict[str, Any], name: str) -> dict[str, Any]:
    rooms: dict[str, Any] = body.get("rooms", {}).get(name, {})
    return rooms


def timeline_ids(room: dict[str, Any]) -> list[str]:
    return [e["event_id"] for e in room["timeline"]["events"]]


def state_keys(room: dict[str, Any], key: str = "state") -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room.get(key, {}).get("events", [])}


def state_ids(room: dict[str, Any], key: str = "state") -> set[str]:
    return {e["event_id"] for e in room.get(key, {}).get("events", [])}


def members_in(room: dict[str, Any], key: str = "state") -> set[str]:
    """The state keys of the m.room.member events in a room's state section."""
    return {k for t, k in state_keys(room, key) if t == "m.room.member"}
