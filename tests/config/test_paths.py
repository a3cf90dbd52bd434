"""Path parameters with an encoded ``/`` (``%2F``) route like any other character
(config/paths.py): transaction IDs, state keys, event types, account data types, tags,
device IDs. Through the test client, and through the ASGI application as Daphne drives
it (the live test in tests/live/test_http_stack.py goes through Daphne itself)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import pytest

from config.asgi import matrix_asgi_app
from config.paths import routing_path, unescape_parameter
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, get_state, room_path, send, set_state
from tests.sync.helpers import joined, sync


def enc(value: str) -> str:
    return quote(value, safe="")


# --- the routing path --------------------------------------------------------------


def test_a_path_without_an_encoded_slash_routes_as_decoded() -> None:
    assert routing_path(b"/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t1") is None


def test_the_routing_path_keeps_only_the_slash_and_percent_escapes() -> None:
    raw = b"/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/tx%2f1%252F%C3%A9"
    routed = routing_path(raw)
    assert routed == "/_matrix/client/v3/rooms/!a:b/send/m.room.message/tx%2F1%252F\u00e9"
    assert unescape_parameter("tx%2F1%252F\u00e9") == "tx/1%2F\u00e9"


@pytest.mark.parametrize(
    ("sent", "meant"),
    [("a/b", "a/b"), ("a%2Fb", "a%2Fb"), ("%/", "%/"), ("100%", "100%"), ("/", "/")],
)
def test_a_parameter_survives_the_round_trip(sent: str, meant: str) -> None:
    routed = routing_path(f"/x/{enc(sent)}".encode())
    # Without a %2F the server's decoded path is routed, and parameters are taken as is.
    got = sent if routed is None else unescape_parameter(routed.removeprefix("/x/"))
    assert got == meant


def test_a_raw_path_that_is_not_utf8_falls_back_to_the_decoded_path() -> None:
    assert routing_path(b"/x/%FF%2F") is None


# --- over HTTP ---------------------------------------------------------------------


def test_a_transaction_id_with_a_slash(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    first = send(api, alice, room, "one", txn_id="tx/1")
    # The same transaction again is the same event; "tx" is another transaction.
    assert send(api, alice, room, "one", txn_id="tx/1") == first
    other = send(api, alice, room, "two", txn_id="tx")
    assert other != first
    events = joined(sync(api, alice))[room]["timeline"]["events"]
    assert [e["unsigned"].get("transaction_id") for e in events if e["event_id"] == first] == [
        "tx/1"
    ]


def test_an_event_type_with_a_slash(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    event_id = send(api, alice, room, {"x": 1}, event_type="org.example/kind", txn_id="t/2")
    event = api.get(room_path(room, "event", event_id), token=alice.access_token)
    assert event.status == 200, event.body
    assert event.body["type"] == "org.example/kind"


def test_a_state_key_with_a_slash(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    set_state(api, alice, room, "org.example.state", {"v": 1}, state_key="a/b")
    set_state(api, alice, room, "org.example.state", {"v": 2}, state_key="a%2Fb")
    assert get_state(api, alice, room, "org.example.state", "a/b").body == {"v": 1}
    assert get_state(api, alice, room, "org.example.state", "a%2Fb").body == {"v": 2}


@pytest.mark.parametrize("data_type", ["org.example/slash", "org.example%2Fslash"])
def test_account_data_types_with_a_slash(
    api: MatrixTestClient, alice: Persona, data_type: str
) -> None:
    room = create_room(api, alice)
    base = f"user/{enc(alice.user_id)}"
    paths = [
        f"{base}/account_data/{enc(data_type)}",
        f"{base}/rooms/{enc(room)}/account_data/{enc(data_type)}",
    ]
    for path in paths:
        put = api.put(path, {"on": data_type}, token=alice.access_token)
        assert put.status == 200, put.body
        got = api.get(path, token=alice.access_token)
        assert got.status == 200, got.body
        assert got.body == {"on": data_type}
    body = sync(api, alice)
    assert {"type": data_type, "content": {"on": data_type}} in body["account_data"]["events"]


def test_a_room_tag_with_a_slash(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    tags = f"user/{enc(alice.user_id)}/rooms/{enc(room)}/tags"
    put = api.put(f"{tags}/{enc('u.work/home')}", {"order": 0.5}, token=alice.access_token)
    assert put.status == 200, put.body
    listed = api.get(tags, token=alice.access_token).body
    assert listed == {"tags": {"u.work/home": {"order": 0.5}}}
    deleted = api.delete(f"{tags}/{enc('u.work/home')}", token=alice.access_token)
    assert deleted.status == 200, deleted.body
    assert api.get(tags, token=alice.access_token).body == {"tags": {}}


def test_to_device_transaction_ids_and_device_ids_with_a_slash(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    login = api.login("bob", "correct horse", device_id="phone/2")
    assert login.status == 200, login.body
    device = api.get(f"devices/{enc('phone/2')}", token=bob.access_token)
    assert device.status == 200, device.body
    assert device.body["device_id"] == "phone/2"

    messages = {"messages": {bob.user_id: {"phone/2": {"n": 1}}}}
    path = f"sendToDevice/org.example.ping/{enc('tx/9')}"
    assert api.put(path, messages, token=alice.access_token).status == 200
    # A retransmission is not delivered twice.
    assert api.put(path, messages, token=alice.access_token).status == 200
    to_device = sync(api, bob, token=login.body["access_token"])
    assert [e["content"] for e in to_device["to_device"]["events"]] == [{"n": 1}]


# --- through the ASGI application ----------------------------------------------------


def _asgi(
    method: str, raw_path: bytes, token: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """One request through config.asgi's Matrix handler, as Daphne makes it."""
    payload = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path.decode().replace("%2F", "/"),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8008),
    }
    messages = [{"type": "http.request", "body": payload, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(matrix_asgi_app(scope, receive, send), 30))
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(content)


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_routes_an_encoded_slash(
    api: MatrixTestClient, alice: Persona
) -> None:
    path = f"/_matrix/client/v3/user/{enc(alice.user_id)}/account_data/org.example%2Fslash"
    status, body = _asgi("PUT", path.encode(), alice.access_token, {"via": "asgi"})
    assert (status, body) == (200, {})
    status, body = _asgi("GET", path.encode(), alice.access_token)
    assert (status, body) == (200, {"via": "asgi"})
    # Stored under the decoded type, as any other client would read it.
    got = api.get(
        f"user/{enc(alice.user_id)}/account_data/{enc('org.example/slash')}",
        token=alice.access_token,
    )
    assert got.body == {"via": "asgi"}
