"""Push notifications end to end: a real homeserver (web server and its Celery worker, as
``make run`` starts them) delivers to a push gateway on 127.0.0.1, allowed through
TRELLIS_PUSH_IP_ALLOWLIST."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.conftest import LiveServer, backend_environ, start_homeserver, stop_homeserver
from tests.push.conftest import Gateway

pytestmark = pytest.mark.live

WAIT_S = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("push")
    with backend_environ(data_dir, slot=2) as backend:
        running = start_homeserver(
            data_dir, backend, environ={"TRELLIS_PUSH_IP_ALLOWLIST": "127.0.0.1/32"}
        )
        try:
            yield running
        finally:
            stop_homeserver(running)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    yield running
    running.stop()


def call(server: LiveServer, method: str, path: str, body: Any, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def register(server: LiveServer, localpart: str) -> str:
    body = {"username": localpart, "password": "pw-5d1f", "auth": {"type": "m.login.dummy"}}
    return str(call(server, "POST", "register", body)["access_token"])


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def pusher(gateway: Gateway, pushkey: str) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "org.example.live",
        "pushkey": pushkey,
        "app_display_name": "Live",
        "device_display_name": "phone",
        "lang": "en",
        "data": {"url": gateway.url},
    }


def one_to_one(server: LiveServer, name: str) -> tuple[str, str, str]:
    """Tokens of two new users in a new room of theirs, and the room."""
    alice = register(server, f"{name}_a")
    bob = register(server, f"{name}_b")
    room = call(server, "POST", "createRoom", {"preset": "public_chat"}, alice)["room_id"]
    call(server, "POST", f"join/{quote(room)}", {}, bob)
    return alice, bob, room


def say(server: LiveServer, token: str, room: str, body: str) -> str:
    path = f"rooms/{quote(room)}/send/m.room.message/{time.monotonic_ns()}"
    return str(call(server, "PUT", path, {"msgtype": "m.text", "body": body}, token)["event_id"])


def test_a_message_to_an_offline_user_reaches_the_gateway(
    server: LiveServer, gateway: Gateway
) -> None:
    alice, bob, room = one_to_one(server, "offline")
    call(server, "POST", "pushers/set", pusher(gateway, "phone"), alice)
    event_id = say(server, bob, room, "are you there?")
    wait_for(lambda: len(gateway.received) == 1)
    (notification,) = gateway.notifications
    assert notification["event_id"] == event_id
    assert notification["counts"] == {"unread": 1}
    assert notification["prio"] == "high"  # one-to-one: a sound
    assert notification["content"]["body"] == "are you there?"
    assert notification["devices"][0]["pushkey"] == "phone"


def test_a_gateway_down_for_a_while_gets_the_notification_once(
    server: LiveServer, gateway: Gateway
) -> None:
    alice, bob, room = one_to_one(server, "down")
    call(server, "POST", "pushers/set", pusher(gateway, "down"), alice)
    gateway.status = 503
    event_id = say(server, bob, room, "anyone?")
    time.sleep(1.5)  # the first attempt fails, the retry waits
    gateway.status = 200
    wait_for(lambda: len(gateway.received) == 1)
    time.sleep(3)  # nothing more comes
    assert [n["event_id"] for n in gateway.notifications] == [event_id]


def test_a_rejected_pushkey_removes_the_pusher(server: LiveServer, gateway: Gateway) -> None:
    alice, bob, room = one_to_one(server, "rejected")
    call(server, "POST", "pushers/set", pusher(gateway, "expired"), alice)
    gateway.rejected = ["expired"]
    say(server, bob, room, "hello")
    wait_for(lambda: len(gateway.received) == 1)
    wait_for(lambda: call(server, "GET", "pushers", None, alice)["pushers"] == [])
