"""/sync helpers for the to-device, presence, tags and ignored-users tests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.conftest import MatrixTestClient, Persona


def sync(api: MatrixTestClient, who: Persona, **params: Any) -> dict[str, Any]:
    """GET /sync as ``who`` with query parameters (a ``filter`` dict goes as JSON)."""
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    query = urlencode(params)
    response = api.get("sync" + (f"?{query}" if query else ""), token=who.access_token)
    assert response.status == 200, (response.status, response.body)
    body: dict[str, Any] = response.body
    return body


def section(body: dict[str, Any], name: str) -> dict[str, Any]:
    rooms: dict[str, Any] = body.get("rooms", {}).get(name, {})
    return rooms


def joined(body: dict[str, Any]) -> dict[str, Any]:
    return section(body, "join")


def timeline_ids(room: dict[str, Any]) -> list[str]:
    return [e["event_id"] for e in room["timeline"]["events"]]
