"""Rooms shared between servers, for real: Trellis federating with Synapse (installed from
the package index into its own virtualenv, tests/live/synapse.py) and with another
Trellis, each over its TLS federation listener on loopback (tests/live/federation_peers.py).

Each scenario runs once with Synapse as the other server and once with a second Trellis:
- a room made on Trellis, joined by the other server's user after an invite; 50 messages
  each way; name, topic and power level changes; typing and receipts both ways; the other
  user leaves; then both servers show the same members, state and messages in the same
  order through their own client APIs;
- a room made on the other server, joined from Trellis by alias, its earlier history
  backfilled into Trellis's /messages.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.live.federation_peers import (
    Client,
    Network,
    SyncStream,
    eventually,
)

pytestmark = pytest.mark.live

MESSAGES = 50


def ephemeral(answer: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = answer.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


def typing_users(answer: dict[str, Any], room_id: str) -> set[str] | None:
    events = ephemeral(answer, room_id, "m.typing")
    return set(events[-1]["content"]["user_ids"]) if events else None


def readers(answer: dict[str, Any], room_id: str, event_id: str) -> set[str]:
    users: set[str] = set()
    for event in ephemeral(answer, room_id, "m.receipt"):
        users.update(event["content"].get(event_id, {}).get("m.read", {}))
    return users


def state_ids(client: Client, room_id: str) -> dict[tuple[str, str], str]:
    return {(e["type"], e["state_key"]): e["event_id"] for e in client.state(room_id)}


def timeline_ids(client: Client, room_id: str, *, until: str | None = None) -> list[str]:
    """The room's timeline as the client's server shows it: event ID, type and state key
    (or body) of each event, oldest first, up to ``until``."""
    events = client.messages(room_id)
    ids = [event["event_id"] for event in events]
    if until is not None and until in ids:
        events = events[: ids.index(until) + 1]
    return [
        f"{e['event_id']} {e['type']} {e.get('state_key', e['content'].get('body', ''))}"
        for e in events
    ]


def texts_from(client: Client, room_id: str, prefix: str) -> list[str]:
    return [text for text in client.texts(room_id) if text.startswith(prefix)]


@pytest.mark.parametrize("kind", ["synapse", "trellis"])
def test_a_trellis_room_joined_by_another_servers_user_after_an_invite(
    network: Network, kind: str
) -> None:
    peer_url, _peer_name = network.peer(kind)
    alice = Client.register(network.home.url, f"alice-{kind}")
    bob = Client.register(peer_url, f"bob-{kind}")
    room_id = alice.create_room(preset="private_chat", name="before")
    alice_sync = SyncStream(alice)
    bob_sync = SyncStream(bob)

    alice.invite(room_id, bob.user_id)
    bob_sync.wait_for("the invite", lambda a: room_id in a.get("rooms", {}).get("invite", {}))
    assert bob.join(room_id, via=[network.home.server_name]) == room_id
    eventually(lambda: bob.user_id in alice.joined_members(room_id), what="bob joined")

    for i in range(MESSAGES):
        alice.send(room_id, f"from home {i}")
    eventually(
        lambda: len(texts_from(bob, room_id, "from home")) == MESSAGES,
        what="home's messages on the other server",
    )
    for i in range(MESSAGES):
        bob.send(room_id, f"from {kind} {i}")
    eventually(
        lambda: len(texts_from(alice, room_id, f"from {kind}")) == MESSAGES,
        what="the other server's messages on Trellis",
    )
    assert texts_from(alice, room_id, "from home") == [f"from home {i}" for i in range(MESSAGES)]
    assert texts_from(bob, room_id, f"from {kind}") == [
        f"from {kind} {i}" for i in range(MESSAGES)
    ]

    # Name and power levels from Trellis; topic from the other server, once it may.
    alice.set_state(room_id, "m.room.name", {"name": "after"})
    power = alice.state_event(room_id, "m.room.power_levels")
    power["users"][bob.user_id] = 50
    alice.set_state(room_id, "m.room.power_levels", power)
    eventually(
        lambda: bob.state_event(room_id, "m.room.power_levels")["users"].get(bob.user_id) == 50,
        what="the power change on the other server",
    )
    assert bob.state_event(room_id, "m.room.name")["name"] == "after"
    bob.set_state(room_id, "m.room.topic", {"topic": f"set on {kind}"})
    eventually(
        lambda: alice.state_event(room_id, "m.room.topic").get("topic") == f"set on {kind}",
        what="the topic on Trellis",
    )

    # Typing and receipts, both ways.
    bob.typing(room_id)
    alice_sync.wait_for(
        "the other user typing", lambda a: bob.user_id in (typing_users(a, room_id) or set())
    )
    alice.typing(room_id)
    bob_sync.wait_for(
        "alice typing", lambda a: alice.user_id in (typing_users(a, room_id) or set())
    )
    last = alice.send(room_id, "read me")
    eventually(lambda: "read me" in bob.texts(room_id), what="the last message")
    bob.receipt(room_id, last)
    alice_sync.wait_for("bob's receipt", lambda a: bob.user_id in readers(a, room_id, last))
    alice.receipt(room_id, last)
    bob_sync.wait_for("alice's receipt", lambda a: alice.user_id in readers(a, room_id, last))

    bob.leave(room_id)
    eventually(lambda: alice.joined_members(room_id) == {alice.user_id}, what="bob left")
    leave_id = state_ids(alice, room_id)[("m.room.member", bob.user_id)]

    # Both servers agree: members, state and the timeline up to the leave, in order.
    assert state_ids(bob, room_id) == state_ids(alice, room_id)
    home_timeline = timeline_ids(alice, room_id, until=leave_id)
    assert home_timeline[-1].startswith(leave_id)
    assert timeline_ids(bob, room_id, until=leave_id) == home_timeline


@pytest.mark.parametrize("kind", ["synapse", "trellis"])
def test_a_room_of_another_server_joined_from_trellis_by_alias(
    network: Network, kind: str
) -> None:
    peer_url, peer_name = network.peer(kind)
    carol = Client.register(peer_url, f"carol-{kind}")
    dan = Client.register(network.home.url, f"dan-{kind}")
    alias_name = f"interop-{kind}"
    room_id = carol.create_room(preset="public_chat", room_alias_name=alias_name)
    for i in range(30):
        carol.send(room_id, f"early {i}")

    assert dan.join(f"#{alias_name}:{peer_name}") == room_id
    eventually(lambda: dan.user_id in carol.joined_members(room_id), what="dan joined")

    # The history from before the join, backfilled from the other server.
    assert texts_from(dan, room_id, "early") == [f"early {i}" for i in range(30)]
    dan.send(room_id, "hello from trellis")
    eventually(lambda: "hello from trellis" in carol.texts(room_id), what="dan's message")
    carol.send(room_id, "hello back")
    eventually(lambda: "hello back" in dan.texts(room_id), what="carol's answer")
    assert timeline_ids(dan, room_id) == timeline_ids(carol, room_id)
    assert state_ids(dan, room_id) == state_ids(carol, room_id)


@pytest.mark.parametrize("kind", ["synapse", "trellis"])
def test_servers_find_and_authenticate_each_other_over_tls(network: Network, kind: str) -> None:
    """The other server's user reads a Trellis user's profile: the other server asks
    Trellis over TLS (/query/profile), and Trellis checks the request's signature with the
    key it fetches from the other server over TLS."""
    peer_url, _peer_name = network.peer(kind)
    erin = Client.register(network.home.url, f"erin-{kind}")
    erin.request(
        "PUT",
        f"/_matrix/client/v3/profile/{erin.user_id}/displayname",
        {"displayname": f"Erin seen from {kind}"},
    )
    frank = Client.register(peer_url, f"frank-{kind}")
    assert frank.profile(erin.user_id)["displayname"] == f"Erin seen from {kind}"
