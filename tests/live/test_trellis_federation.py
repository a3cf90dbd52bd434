"""Two real Trellis servers in one room (tests/live/trellis_pair.py): alice on A creates
a public room with an alias, bob on B joins it by the alias (A's directory, make_join,
send_join over verified TLS), both send messages and see the same timeline in the same
order, bob leaves and both servers agree on the members."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.conftest import LiveServer
from tests.live.trellis_pair import Client, federating_pair, wait_for

pytestmark = pytest.mark.live

MESSAGES = 10


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    base: Path = tmp_path_factory.mktemp("trellis-pair")
    with federating_pair(base) as servers:
        yield servers


def _has_event(client: Client, room_id: str, event_id: str) -> bool | None:
    return True if any(e["event_id"] == event_id for e in client.messages(room_id)) else None


def test_a_user_of_another_server_joins_talks_and_leaves(
    pair: tuple[LiveServer, LiveServer],
) -> None:
    a, b = pair
    alice = Client.register(a, "alice")
    bob = Client.register(b, "bob")
    room_id = alice.call(
        "POST", "createRoom", {"preset": "public_chat", "room_alias_name": "town"}
    )["room_id"]

    joined = bob.call("POST", f"join/%23town%3A{a.server_name.replace(':', '%3A')}", {})

    assert joined["room_id"] == room_id
    assert bob.members(room_id) == {alice.user_id: "join", bob.user_id: "join"}
    wait_for(
        "bob's join to be on A",
        lambda: True if alice.members(room_id).get(bob.user_id) == "join" else None,
    )

    # Turn by turn, each message seen on the other server before the next is sent, so
    # both servers have one linear history.
    for n in range(MESSAGES):
        sent = alice.send(room_id, f"alice {n}", f"a{n}")
        wait_for(f"alice {n} on B", lambda sent=sent: _has_event(bob, room_id, sent))
        sent = bob.send(room_id, f"bob {n}", f"b{n}")
        wait_for(f"bob {n} on A", lambda sent=sent: _has_event(alice, room_id, sent))

    on_a = [e for e in alice.messages(room_id) if e["type"] == "m.room.message"]
    on_b = [e for e in bob.messages(room_id) if e["type"] == "m.room.message"]
    expected = [f"{who} {n}" for n in range(MESSAGES) for who in ("alice", "bob")]
    assert [e["content"]["body"] for e in on_a] == expected
    assert [e["event_id"] for e in on_b] == [e["event_id"] for e in on_a]
    assert [e["sender"] for e in on_b] == [e["sender"] for e in on_a]

    bob.call("POST", bob.room(room_id, "leave"), {})

    wait_for(
        "bob's leave to be on A",
        lambda: True if alice.members(room_id).get(bob.user_id) == "leave" else None,
    )
    expected_members = {alice.user_id: "join", bob.user_id: "leave"}
    assert alice.members(room_id) == expected_members
    assert bob.members(room_id) == expected_members
