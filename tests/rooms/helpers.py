"""Room helpers for the HTTP tests, in the spirit of Synapse's ``RestHelper``.

Each helper makes one request as a persona, asserts the expected status (200 unless
``expect`` says otherwise) and returns what a test usually wants next: the room ID,
the event ID, or the whole :class:`Response` when the answer is the subject.
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import quote, urlencode

from tests.conftest import MatrixTestClient, Persona, Response

_txn_ids = itertools.count(1)


def room_path(room_id: str, *parts: str) -> str:
    """``rooms/{roomId}/...`` with every path parameter percent-encoded, as a client would."""
    return "/".join(["rooms", quote(room_id, safe=""), *(quote(p, safe="") for p in parts)])


def _check(response: Response, expect: int) -> Response:
    assert response.status == expect, (response.status, response.body)
    return response


def create_room(api: MatrixTestClient, who: Persona, **body: Any) -> str:
    response = _check(api.post("createRoom", body, token=who.access_token), 200)
    return response.body["room_id"]


def join(api: MatrixTestClient, who: Persona, room: str, *, expect: int = 200) -> Response:
    return _check(api.post(f"join/{quote(room, safe='')}", token=who.access_token), expect)


def invite(
    api: MatrixTestClient, who: Persona, room: str, target: Persona, *, expect: int = 200
) -> Response:
    response = api.post(
        room_path(room, "invite"), {"user_id": target.user_id}, token=who.access_token
    )
    return _check(response, expect)


def leave(api: MatrixTestClient, who: Persona, room: str, *, expect: int = 200) -> Response:
    return _check(api.post(room_path(room, "leave"), token=who.access_token), expect)


def membership_action(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    action: str,
    target: Persona,
    *,
    expect: int = 200,
    **body: Any,
) -> Response:
    """POST /rooms/{roomId}/{kick,ban,unban,invite} against ``target``."""
    response = api.post(
        room_path(room, action), {"user_id": target.user_id, **body}, token=who.access_token
    )
    return _check(response, expect)


def send(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    body: str | dict[str, Any] = "hello",
    *,
    event_type: str = "m.room.message",
    txn_id: str | None = None,
    token: str | None = None,
    expect: int = 200,
) -> str:
    """Send a message (a text body or a whole content object); returns the event ID."""
    content = {"msgtype": "m.text", "body": body} if isinstance(body, str) else body
    txn = txn_id if txn_id is not None else f"txn{next(_txn_ids)}"
    response = api.put(
        room_path(room, "send", event_type, txn),
        content,
        token=token or who.access_token,
    )
    _check(response, expect)
    return response.body.get("event_id", "") if expect == 200 else ""


def set_state(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    event_type: str,
    content: dict[str, Any],
    state_key: str = "",
    *,
    expect: int = 200,
) -> Response:
    response = api.put(
        room_path(room, "state", event_type, state_key), content, token=who.access_token
    )
    return _check(response, expect)


def get_state(
    api: MatrixTestClient, who: Persona, room: str, event_type: str, state_key: str = ""
) -> Response:
    return api.get(room_path(room, "state", event_type, state_key), token=who.access_token)


def state_map(api: MatrixTestClient, who: Persona, room: str) -> dict[tuple[str, str], Any]:
    """GET /rooms/{roomId}/state as {(type, state_key): event}."""
    response = _check(api.get(room_path(room, "state"), token=who.access_token), 200)
    return {(e["type"], e["state_key"]): e for e in response.body}


def messages(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> Response:
    """GET /rooms/{roomId}/messages; a ``filter`` dict is sent as JSON."""
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    query = urlencode(params)
    return api.get(
        room_path(room, "messages") + (f"?{query}" if query else ""), token=who.access_token
    )


def bodies(events: list[dict[str, Any]]) -> list[str]:
    """The text bodies of the m.room.message events among ``events``, in order."""
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]
