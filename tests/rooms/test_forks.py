"""Remote rooms that fork, as local members see them.

State that reaches a room by resolution, not as a timeline event, reaches /sync: a
remote fork whose state arrives only through /state_ids (outliers) bans a local member
and changes the topic; the banned member's /sync moves the room to "leave", another
member's incremental /sync carries the new topic in its state section. A local member
sends into a room with more tips than an event may cite. State storage grows with
state changes, not with events."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from federation.keys import server_signing_key
from federation.models import RemoteServerKey
from protocol.auth_rules import auth_types_for_event
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.signing import encode_verify_key_base64, generate_signing_key, hash_and_sign_event
from rooms.models import Event, ForwardExtremity, StateGroupEntry
from rooms.services.incoming import receive_joined_room, receive_pdu
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import FakeNetwork, network

__all__ = ["network"]

V11 = KNOWN_ROOM_VERSIONS["11"]
REMOTE = "remote.test"
ROOM = "!fork:remote.test"
MOD = "@mod:remote.test"
State = dict[tuple[str, str], str]


class Remote:
    """A remote room's graph, signing its users' events (and the local users', as our
    own server would when they join through it)."""

    def __init__(self) -> None:
        self.key = generate_signing_key("r1")
        RemoteServerKey.objects.create(
            server_name=REMOTE,
            key_id=self.key.key_id,
            verify_key=encode_verify_key_base64(self.key.verify_key),
            valid_until_ts=2**62,
            fetched_ts=0,
            fetched_from=REMOTE,
        )
        self.events: dict[str, PDUEvent] = {}
        self.before: dict[str, State] = {}
        self.after: dict[str, State] = {}

    def send(
        self,
        sender: str,
        etype: str,
        content: dict[str, Any],
        prev: list[str],
        state_key: str | None = None,
    ) -> PDUEvent:
        # Linear forks only: the state before is the state after the one prev event.
        state = dict(self.after[prev[0]]) if prev else {}
        keys = auth_types_for_event(V11, etype, sender, state_key, content)
        pdu: dict[str, Any] = {
            "type": etype,
            "room_id": ROOM,
            "sender": sender,
            "content": content,
            "origin_server_ts": 1000 + len(self.events),
            "depth": max((self.events[p].depth for p in prev), default=0) + 1,
            "prev_events": prev,
            "auth_events": sorted(state[k] for k in keys if k in state),
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        local = sender.endswith(":" + settings.SERVER_NAME)
        server, key = (settings.SERVER_NAME, server_signing_key()) if local else (REMOTE, self.key)
        event = PDUEvent(hash_and_sign_event(pdu, server, key, V11), V11)
        self.events[event.event_id] = event
        self.before[event.event_id] = state
        after = dict(state)
        if state_key is not None:
            after[(etype, state_key)] = event.event_id
        self.after[event.event_id] = after
        return event

    # EventSource
    def get_events(self, room_id: str, event_ids: list[str]) -> list[dict[str, Any]]:
        return [self.events[e].pdu for e in event_ids if e in self.events]

    def get_state_ids(self, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        state = list(self.before[event_id].values())
        chain: set[str] = set()
        todo = list(state)
        while todo:
            for auth in self.events[todo.pop()].auth_event_ids:
                if auth not in chain:
                    chain.add(auth)
                    todo.append(auth)
        return state, sorted(chain)


def _sync(api: MatrixTestClient, who: Persona, since: str | None = None) -> dict[str, Any]:
    path = "/_matrix/client/v3/sync" + (f"?since={since}" if since else "")
    response = api.get(path, token=who.access_token)
    assert response.status == 200, response.body
    return response.body


def test_a_fork_resolved_against_a_member_reaches_their_sync(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    remote = Remote()
    create = remote.send(MOD, "m.room.create", {"room_version": "11"}, [], "")
    join = remote.send(MOD, "m.room.member", {"membership": "join"}, [create.event_id], MOD)
    power = remote.send(MOD, "m.room.power_levels", {"users": {MOD: 100}}, [join.event_id], "")
    rules = remote.send(MOD, "m.room.join_rules", {"join_rule": "public"}, [power.event_id], "")
    tip = rules.event_id
    for who in (alice, bob):
        joined = remote.send(
            who.user_id, "m.room.member", {"membership": "join"}, [tip], who.user_id
        )
        tip = joined.event_id
    for event in list(remote.events.values()):
        receive_pdu(event.pdu, origin=REMOTE)
    alice_token = _sync(api, alice)["next_batch"]
    bob_token = _sync(api, bob)["next_batch"]
    assert ROOM in _sync(api, bob)["rooms"]["join"]

    # Bob speaks on the tip everyone knows...
    spoken = remote.send(bob.user_id, "m.room.message", {"body": "hi"}, [tip])
    receive_pdu(spoken.pdu, origin=REMOTE)
    # ...while on a fork from the same tip the moderator changes the topic and bans him;
    # this server learns of that fork only from a later message citing it (a gap it does
    # not fill, as when it is longer than MAX_GAP), with the
    # fork's state fetched from the remote (outliers, never in the timeline).
    topic = remote.send(MOD, "m.room.topic", {"topic": "forked"}, [tip], "")
    ban = remote.send(MOD, "m.room.member", {"membership": "ban"}, [topic.event_id], bob.user_id)
    after = remote.send(MOD, "m.room.message", {"body": "bye"}, [ban.event_id])
    receive_pdu(after.pdu, origin=REMOTE, source=remote, fill_gap=False)
    assert Event.objects.get(event_id=ban.event_id).outlier

    bob_sync = _sync(api, bob, bob_token)
    assert ROOM in bob_sync["rooms"]["leave"], bob_sync["rooms"]
    assert ROOM not in bob_sync["rooms"].get("join", {})

    alice_room = _sync(api, alice, alice_token)["rooms"]["join"][ROOM]
    timeline_ids = [e["event_id"] for e in alice_room["timeline"]["events"]]
    assert after.event_id in timeline_ids
    assert topic.event_id not in timeline_ids
    state_ids = {e["event_id"] for e in alice_room["state"]["events"]}
    assert {topic.event_id, ban.event_id} <= state_ids


def _remote_room(remote: Remote, members: list[Persona]) -> str:
    """A public remote room the members joined; the tip's event ID."""
    create = remote.send(MOD, "m.room.create", {"room_version": "11"}, [], "")
    join = remote.send(MOD, "m.room.member", {"membership": "join"}, [create.event_id], MOD)
    power = remote.send(MOD, "m.room.power_levels", {"users": {MOD: 100}}, [join.event_id], "")
    rules = remote.send(MOD, "m.room.join_rules", {"join_rule": "public"}, [power.event_id], "")
    tip = rules.event_id
    for who in members:
        tip = remote.send(
            who.user_id, "m.room.member", {"membership": "join"}, [tip], who.user_id
        ).event_id
    for event in list(remote.events.values()):
        receive_pdu(event.pdu, origin=REMOTE)
    return tip


def test_a_local_send_on_more_tips_than_an_event_cites(
    api: MatrixTestClient, alice: Persona
) -> None:
    remote = Remote()
    tip = _remote_room(remote, [alice])
    for n in range(12):
        message = remote.send(MOD, "m.room.message", {"body": f"fork {n}"}, [tip])
        receive_pdu(message.pdu, origin=REMOTE)
    assert ForwardExtremity.objects.count() == 12
    response = api.put(
        f"/_matrix/client/v3/rooms/{ROOM}/send/m.room.message/t1",
        {"msgtype": "m.text", "body": "on ten of them"},
        token=alice.access_token,
    )
    assert response.status == 200, response.body
    sent = Event.objects.get(event_id=response.body["event_id"])
    assert len(sent.pdu["prev_events"]) == 10
    # The two tips it could not cite stay tips beside it.
    assert ForwardExtremity.objects.count() == 3


def test_state_storage_grows_with_state_changes_not_with_events(
    api: MatrixTestClient, alice: Persona
) -> None:
    remote = Remote()
    tip = _remote_room(remote, [alice])
    entries = StateGroupEntry.objects.count()
    # Forks of messages, merged again: no state changes, no new state entries.
    forks = [
        remote.send(MOD, "m.room.message", {"body": str(n)}, [tip]).event_id for n in range(5)
    ]
    merge = remote.send(MOD, "m.room.message", {"body": "merged"}, forks)
    for event_id in [*forks, merge.event_id]:
        receive_pdu(remote.events[event_id].pdu, origin=REMOTE)
    assert StateGroupEntry.objects.count() == entries
    # Two concurrent topic changes: each adds one entry, their resolution one more.
    topics = [
        remote.send(MOD, "m.room.topic", {"topic": str(n)}, [merge.event_id], "").event_id
        for n in range(2)
    ]
    for event_id in topics:
        receive_pdu(remote.events[event_id].pdu, origin=REMOTE)
    assert StateGroupEntry.objects.count() <= entries + 3


def test_backfilled_history_shows_in_messages_in_its_place_and_never_in_sync(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    """(``network``: the gap left before the room's first events makes /messages ask
    the remote server, which here is unreachable.)"""
    remote = Remote()
    create = remote.send(MOD, "m.room.create", {"room_version": "11"}, [], "")
    join = remote.send(MOD, "m.room.member", {"membership": "join"}, [create.event_id], MOD)
    power = remote.send(MOD, "m.room.power_levels", {"users": {MOD: 100}}, [join.event_id], "")
    rules = remote.send(MOD, "m.room.join_rules", {"join_rule": "public"}, [power.event_id], "")
    tip = rules.event_id
    old = []
    for n in range(3):
        tip = remote.send(MOD, "m.room.message", {"body": f"old {n}"}, [tip]).event_id
        old.append(tip)
    joined = remote.send(
        alice.user_id, "m.room.member", {"membership": "join"}, [tip], alice.user_id
    )
    # This server learns of the room at Alice's join, with the state before it (no
    # history), as a join through the remote server does.
    state_ids, chain_ids = remote.get_state_ids(ROOM, joined.event_id)
    receive_joined_room(
        joined.pdu,
        remote.get_events(ROOM, state_ids),
        remote.get_events(ROOM, chain_ids),
        origin=REMOTE,
    )
    assert Event.objects.get(event_id=create.event_id).outlier
    since = _sync(api, alice)["next_batch"]
    new = remote.send(MOD, "m.room.message", {"body": "new"}, [joined.event_id])
    receive_pdu(new.pdu, origin=REMOTE)
    # Then fetches the history backwards, newest first, as /backfill gives it.
    for event_id in reversed(old):
        row = receive_pdu(
            remote.events[event_id].pdu, origin=REMOTE, source=remote, backfilled=True
        )
        assert row.stream_ordering < 0

    timeline = _sync(api, alice, since)["rooms"]["join"][ROOM]["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [new.event_id]
    response = api.get(
        f"/_matrix/client/v3/rooms/{ROOM}/messages?dir=b&limit=20", token=alice.access_token
    )
    assert response.status == 200, response.body
    bodies = [
        e["content"].get("body") for e in response.body["chunk"] if e["type"] == "m.room.message"
    ]
    assert bodies == ["new", "old 2", "old 1", "old 0"]


def test_a_joined_room_drops_a_forged_state_event_and_keeps_the_rest(
    api: MatrixTestClient, alice: Persona
) -> None:
    remote = Remote()
    create = remote.send(MOD, "m.room.create", {"room_version": "11"}, [], "")
    join = remote.send(MOD, "m.room.member", {"membership": "join"}, [create.event_id], MOD)
    power = remote.send(MOD, "m.room.power_levels", {"users": {MOD: 100}}, [join.event_id], "")
    rules = remote.send(MOD, "m.room.join_rules", {"join_rule": "public"}, [power.event_id], "")
    topic = remote.send(MOD, "m.room.topic", {"topic": "real"}, [rules.event_id], "")
    joined = remote.send(
        alice.user_id, "m.room.member", {"membership": "join"}, [topic.event_id], alice.user_id
    )
    state_ids, chain_ids = remote.get_state_ids(ROOM, joined.event_id)
    state = remote.get_events(ROOM, state_ids)
    forged = next(dict(p) for p in state if p["type"] == "m.room.topic")
    forged["signatures"] = {REMOTE: {"ed25519:r1": "A" * 86}}
    state = [forged if p["type"] == "m.room.topic" else p for p in state]
    row = receive_joined_room(joined.pdu, state, remote.get_events(ROOM, chain_ids), origin=REMOTE)
    assert row.rejected_reason is None
    assert not row.soft_failed
    room = _sync(api, alice)["rooms"]["join"][ROOM]
    types = {e["type"] for e in room["state"]["events"] + room["timeline"]["events"]}
    assert "m.room.topic" not in types
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules"} <= types
