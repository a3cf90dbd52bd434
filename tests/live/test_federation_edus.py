"""What travels between servers besides room events, for real: Trellis federating with
Synapse and with a second Trellis over TLS on loopback (tests/live/federation_peers.py).

For each kind of other server, a Trellis user (Alice) and one of the other server (Bob)
share a room made on Trellis; then, each way:
- a to-device message (m.direct_to_device), to a named device and to ``*``;
- typing, a read receipt and a threaded one (thread_id ``main``);
- a presence change, in /sync and in GET /presence;
and Trellis resolves Bob's profile and an alias Bob made on his server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.live.federation_peers import (
    Client,
    Network,
    SyncStream,
    eventually,
    quote,
)

pytestmark = pytest.mark.live


@dataclass
class Pair:
    kind: str
    peer_name: str
    room_id: str
    alice: Client
    bob: Client
    alice_sync: SyncStream
    bob_sync: SyncStream


def device_id(client: Client) -> str:
    found: str = client.request("GET", "/_matrix/client/v3/account/whoami")["device_id"]
    return found


@pytest.fixture(scope="module", params=["synapse", "trellis"])
def pair(network: Network, request: pytest.FixtureRequest) -> Pair:
    kind: str = request.param
    peer_url, peer_name = network.peer(kind)
    alice = Client.register(network.home.url, f"alice-edus-{kind}")
    bob = Client.register(peer_url, f"bob-edus-{kind}")
    bob.request(
        "PUT",
        f"/_matrix/client/v3/profile/{quote(bob.user_id)}/displayname",
        {"displayname": f"Bob of {kind}"},
    )
    room_id = alice.create_room(preset="private_chat")
    bob_sync = SyncStream(bob)
    alice.invite(room_id, bob.user_id)
    bob_sync.wait_for("the invite", lambda a: room_id in a.get("rooms", {}).get("invite", {}))
    assert bob.join(room_id, via=[network.home.server_name]) == room_id
    eventually(lambda: bob.user_id in alice.joined_members(room_id), what="bob joined")
    return Pair(kind, peer_name, room_id, alice, bob, SyncStream(alice), bob_sync)


def send_to_device(client: Client, messages: dict[str, Any], event_type: str) -> None:
    client.txn += 1
    client.request(
        "PUT",
        f"/_matrix/client/v3/sendToDevice/{event_type}/td{client.txn}",
        {"messages": messages},
    )


def to_device_from(sender: str, event_type: str) -> Any:
    def found(answer: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            event
            for event in answer.get("to_device", {}).get("events", [])
            if event["sender"] == sender and event["type"] == event_type
        ]

    return found


def test_to_device_messages_cross_both_ways(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob

    send_to_device(alice, {bob.user_id: {device_id(bob): {"hello": "bob"}}}, "org.trellis.test")
    [got] = pair.bob_sync.wait_for(
        "alice's to-device message", to_device_from(alice.user_id, "org.trellis.test")
    )
    assert got["content"] == {"hello": "bob"}

    send_to_device(bob, {alice.user_id: {"*": {"hello": "alice"}}}, "org.trellis.test")
    [got] = pair.alice_sync.wait_for(
        "bob's to-device message", to_device_from(bob.user_id, "org.trellis.test")
    )
    assert got["content"] == {"hello": "alice"}


def ephemeral(answer: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = answer.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


def typing_users(room_id: str) -> Any:
    def found(answer: dict[str, Any]) -> set[str] | None:
        events = ephemeral(answer, room_id, "m.typing")
        return set(events[-1]["content"]["user_ids"]) if events else None

    return found


def receipt_of(room_id: str, event_id: str, user_id: str, thread_id: str | None) -> Any:
    """A sync probe: the m.read receipt of ``user_id`` on ``event_id`` in that thread."""

    def found(answer: dict[str, Any]) -> dict[str, Any] | None:
        for event in ephemeral(answer, room_id, "m.receipt"):
            receipt = event["content"].get(event_id, {}).get("m.read", {}).get(user_id)
            if receipt is not None and receipt.get("thread_id") == thread_id:
                return dict(receipt)
        return None

    return found


def post_receipt(client: Client, room_id: str, event_id: str, thread_id: str | None) -> None:
    client.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
        {"thread_id": thread_id} if thread_id else {},
    )


def test_typing_and_receipts_cross_both_ways(pair: Pair) -> None:
    alice, bob, room_id = pair.alice, pair.bob, pair.room_id

    alice.typing(room_id)
    pair.bob_sync.wait_for(
        "alice typing", lambda a: alice.user_id in (typing_users(room_id)(a) or set())
    )
    bob.typing(room_id)
    pair.alice_sync.wait_for(
        "bob typing", lambda a: bob.user_id in (typing_users(room_id)(a) or set())
    )

    first = alice.send(room_id, "read me")
    second = bob.send(room_id, "and me")
    eventually(lambda: "and me" in alice.texts(room_id), what="bob's message on Trellis")
    eventually(lambda: "read me" in bob.texts(room_id), what="alice's message elsewhere")
    for thread_id in (None, "main"):
        post_receipt(alice, room_id, second, thread_id)
        pair.bob_sync.wait_for(
            f"alice's receipt ({thread_id})", receipt_of(room_id, second, alice.user_id, thread_id)
        )
        post_receipt(bob, room_id, first, thread_id)
        pair.alice_sync.wait_for(
            f"bob's receipt ({thread_id})", receipt_of(room_id, first, bob.user_id, thread_id)
        )


def presence_of(user_id: str, status_msg: str) -> Any:
    def found(answer: dict[str, Any]) -> dict[str, Any] | None:
        for event in answer.get("presence", {}).get("events", []):
            content = event["content"]
            if event["sender"] == user_id and content.get("status_msg") == status_msg:
                return dict(content)
        return None

    return found


def set_presence(client: Client, presence: str, status_msg: str) -> None:
    client.request(
        "PUT",
        f"/_matrix/client/v3/presence/{quote(client.user_id)}/status",
        {"presence": presence, "status_msg": status_msg},
    )


def get_presence(client: Client, user_id: str) -> dict[str, Any]:
    return client.request("GET", f"/_matrix/client/v3/presence/{quote(user_id)}/status")


def test_presence_changes_cross_both_ways(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob

    set_presence(alice, "online", f"home to {pair.kind}")
    seen = pair.bob_sync.wait_for(
        "alice's presence", presence_of(alice.user_id, f"home to {pair.kind}")
    )
    assert seen["presence"] == "online"
    assert get_presence(bob, alice.user_id)["status_msg"] == f"home to {pair.kind}"

    set_presence(bob, "unavailable", f"{pair.kind} to home")
    seen = pair.alice_sync.wait_for(
        "bob's presence", presence_of(bob.user_id, f"{pair.kind} to home")
    )
    assert seen["presence"] == "unavailable"
    answer = get_presence(alice, bob.user_id)
    assert (answer["presence"], answer["status_msg"]) == ("unavailable", f"{pair.kind} to home")


def test_a_remote_profile_and_a_remote_alias_resolve(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob

    assert alice.profile(bob.user_id)["displayname"] == f"Bob of {pair.kind}"

    alias = f"#edus-{pair.kind}:{pair.peer_name}"
    bob.set_alias(alias, pair.room_id)
    answer = alice.request("GET", f"/_matrix/client/v3/directory/room/{quote(alias)}")
    assert answer["room_id"] == pair.room_id
    assert pair.peer_name in answer["servers"]
