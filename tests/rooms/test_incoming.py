"""The receive pipeline (rooms.services.incoming) on a small remote room: accepted,
outliers de-outliered, rejected, soft-failed, forged."""

from __future__ import annotations

from typing import Any

import pytest

from federation.models import RemoteServerKey
from protocol.auth_rules import auth_types_for_event
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.signing import encode_verify_key_base64, generate_signing_key, hash_and_sign_event
from rooms.models import CurrentState, Event, ForwardExtremity, Membership, Room
from rooms.services.incoming import InvalidPDU, checked_events, receive_pdu
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, send

V11 = KNOWN_ROOM_VERSIONS["11"]
SERVER = "remote.test"
ROOM = "!r:remote.test"
ALICE = "@alice:remote.test"
BOB = "@bob:remote.test"


class Signer:
    """Signs a room's events as SERVER, choosing auth events from a given state."""

    def __init__(self) -> None:
        self.key = generate_signing_key("k1")
        self.events: dict[str, PDUEvent] = {}

    def install(self) -> None:
        RemoteServerKey.objects.create(
            server_name=SERVER,
            key_id=self.key.key_id,
            verify_key=encode_verify_key_base64(self.key.verify_key),
            valid_until_ts=2**62,
            fetched_ts=0,
            fetched_from=SERVER,
        )

    def make(
        self,
        etype: str,
        sender: str,
        content: dict[str, Any],
        prev: list[str],
        state: dict[tuple[str, str], str],
        state_key: str | None = None,
        extra_auth: tuple[str, ...] = (),
        room_id: str = ROOM,
    ) -> PDUEvent:
        keys = auth_types_for_event(V11, etype, sender, state_key, content)
        keys |= {("m.room.member", user) for user in extra_auth}
        auth = sorted(state[k] for k in keys if k in state)
        depth = max((self.events[p].depth for p in prev), default=0) + 1
        pdu: dict[str, Any] = {
            "type": etype,
            "room_id": room_id,
            "sender": sender,
            "content": content,
            "origin_server_ts": 1000 + len(self.events),
            "depth": depth,
            "prev_events": prev,
            "auth_events": auth,
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        event = PDUEvent(hash_and_sign_event(pdu, SERVER, self.key, V11), V11)
        self.events[event.event_id] = event
        return event


@pytest.fixture
def room(db: None) -> tuple[Signer, list[PDUEvent], dict[tuple[str, str], str]]:
    signer = Signer()
    signer.install()
    state: dict[tuple[str, str], str] = {}
    chain: list[PDUEvent] = []

    def add(etype: str, sender: str, content: dict[str, Any], state_key: str | None) -> None:
        event = signer.make(
            etype, sender, content, [chain[-1].event_id] if chain else [], state, state_key
        )
        chain.append(event)
        if state_key is not None:
            state[(etype, state_key)] = event.event_id

    add("m.room.create", ALICE, {"room_version": "11"}, "")
    add("m.room.member", ALICE, {"membership": "join"}, ALICE)
    add("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "")
    add("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    add("m.room.member", BOB, {"membership": "join"}, BOB)
    return signer, chain, state


def test_a_linear_room_in_order(room: Any) -> None:
    _signer, chain, state = room
    for event in chain:
        row = receive_pdu(event.pdu, origin=SERVER)
        assert not row.outlier
        assert row.rejected_reason is None
        assert row.stream_ordering
    stored = Room.objects.get(room_id=ROOM)
    current = dict(
        ((t, k), e)
        for t, k, e in CurrentState.objects.filter(room=stored).values_list(
            "type", "state_key", "event_id"
        )
    )
    assert current == state
    assert list(ForwardExtremity.objects.values_list("event_id", flat=True)) == [
        chain[-1].event_id
    ]
    assert set(Membership.objects.values_list("user_id", "membership")) == {
        (ALICE, "join"),
        (BOB, "join"),
    }
    # Idempotent.
    assert (
        receive_pdu(chain[-1].pdu, origin=SERVER).pk
        == Event.objects.get(event_id=chain[-1].event_id).pk
    )


def test_an_event_with_unknown_prevs_is_an_outlier_until_they_arrive(room: Any) -> None:
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    first = signer.make("m.room.message", ALICE, {"body": "1"}, [chain[-1].event_id], state)
    second = signer.make("m.room.message", ALICE, {"body": "2"}, [first.event_id], state)
    # Its auth events are known, its prev event is not.
    row = receive_pdu(second.pdu, origin=SERVER)
    assert row.outlier
    assert row.stream_ordering is None
    receive_pdu(first.pdu, origin=SERVER)
    row = receive_pdu(second.pdu, origin=SERVER)
    assert not row.outlier
    assert row.rejected_reason is None
    assert set(ForwardExtremity.objects.values_list("event_id", flat=True)) == {second.event_id}


def test_an_event_whose_auth_events_cannot_be_had_is_dropped(room: Any) -> None:
    _signer, chain, _state = room
    for event in chain[:3]:
        receive_pdu(event.pdu, origin=SERVER)
    # Bob's join cites the join rules, which this server has not seen, and no source.
    with pytest.raises(InvalidPDU):
        receive_pdu(chain[4].pdu, origin=SERVER)
    assert not Event.objects.filter(event_id=chain[4].event_id).exists()


def test_a_fork_banning_bob_wins_over_his_message_and_soft_fails_his_late_topic(
    room: Any,
) -> None:
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    tip = chain[-1].event_id
    ban = signer.make("m.room.member", ALICE, {"membership": "ban"}, [tip], state, BOB)
    receive_pdu(ban.pdu, origin=SERVER)
    # Bob, on a fork that does not know of the ban, speaks: auth passes against the state
    # before it, fails against the current state.
    message = signer.make("m.room.message", BOB, {"body": "hi"}, [tip], state)
    row = receive_pdu(message.pdu, origin=SERVER)
    assert row.rejected_reason is None
    assert row.soft_failed
    assert set(ForwardExtremity.objects.values_list("event_id", flat=True)) == {ban.event_id}
    assert Membership.objects.get(user_id=BOB).membership == "ban"


def test_an_event_citing_the_wrong_auth_events_is_rejected(room: Any) -> None:
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    # Bob's membership is no auth event of Alice's topic (auth rule 2.2).
    event = signer.make(
        "m.room.topic", ALICE, {"topic": "x"}, [chain[-1].event_id], state, extra_auth=(BOB,)
    )
    row = receive_pdu(event.pdu, origin=SERVER)
    assert row.rejected_reason is not None
    assert not CurrentState.objects.filter(type="m.room.topic").exists()


def test_a_bad_signature_stores_nothing(room: Any) -> None:
    _signer, chain, _state = room
    receive_pdu(chain[0].pdu, origin=SERVER)
    pdu = dict(chain[1].pdu)
    pdu["signatures"] = {SERVER: {"ed25519:k1": "A" * 86}}
    with pytest.raises(InvalidPDU):
        receive_pdu(pdu, origin=SERVER)
    assert not Event.objects.filter(event_id=chain[1].event_id).exists()


def test_a_content_hash_mismatch_is_stored_redacted(room: Any) -> None:
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    event = signer.make("m.room.message", BOB, {"body": "hi"}, [chain[-1].event_id], state)
    pdu = dict(event.pdu)
    pdu["content"] = {"body": "tampered"}
    row = receive_pdu(pdu, origin=SERVER)
    assert row.event_id == event.event_id
    assert row.pdu["content"] == {}


def test_a_redaction_that_arrives_first_redacts_its_target_when_it_comes(room: Any) -> None:
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    tip = chain[-1].event_id
    message = signer.make("m.room.message", BOB, {"body": "oops"}, [tip], state)
    redaction = signer.make("m.room.redaction", ALICE, {"redacts": message.event_id}, [tip], state)
    receive_pdu(redaction.pdu, origin=SERVER)
    row = receive_pdu(message.pdu, origin=SERVER)
    row.refresh_from_db()
    assert row.redacted_by == redaction.event_id


class Source:
    """The signer's room as an EventSource (state before an event: replayed in order)."""

    def __init__(self, signer: Signer, chain: list[PDUEvent]) -> None:
        self.signer = signer
        self.chain = chain

    def get_events(self, room_id: str, event_ids: list[str]) -> list[dict[str, Any]]:
        return [self.signer.events[e].pdu for e in event_ids if e in self.signer.events]

    def get_state_ids(self, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        state: dict[tuple[str, str], str] = {}
        for event in self.chain:
            if event.event_id == event_id:
                break
            if event.state_key is not None:
                state[(event.type, event.state_key)] = event.event_id
        chain = {a for e in state.values() for a in self.signer.events[e].auth_event_ids}
        return list(state.values()), sorted(chain)


def test_backfilled_history_takes_negative_positions_and_moves_nothing(room: Any) -> None:
    signer, chain, _state = room
    source = Source(signer, chain)
    receive_pdu(chain[0].pdu, origin=SERVER)
    # Joined late: the newest event, with the state before it from the source.
    newest = receive_pdu(chain[-1].pdu, origin=SERVER, source=source, fill_gap=False)
    assert newest.stream_ordering > 0
    assert Event.objects.get(event_id=chain[2].event_id).outlier
    tips = set(ForwardExtremity.objects.values_list("event_id", flat=True))
    group = Room.objects.get(room_id=ROOM).current_state_group_id
    older = receive_pdu(chain[3].pdu, origin=SERVER, source=source, backfilled=True)
    assert not older.outlier
    assert older.stream_ordering < 0
    assert set(ForwardExtremity.objects.values_list("event_id", flat=True)) == tips
    assert Room.objects.get(room_id=ROOM).current_state_group_id == group


def test_missing_prev_events_are_fetched_and_received_first(room: Any) -> None:
    signer, chain, _state = room
    source = Source(signer, chain)
    receive_pdu(chain[0].pdu, origin=SERVER)
    receive_pdu(chain[-1].pdu, origin=SERVER, source=source)
    rows = Event.objects.filter(event_id__in=[e.event_id for e in chain])
    assert not rows.filter(outlier=True).exists()
    assert not rows.filter(soft_failed=True).exists()
    assert list(rows.order_by("stream_ordering").values_list("event_id", flat=True)) == [
        e.event_id for e in chain
    ]


def test_checked_events_keeps_order_and_says_why_each_dropped_one_is(room: Any) -> None:
    """Many PDUs checked at once (the send_join path, verifications on threads): each
    result in the order given; a bad signature, an unknown key (a second key tried after
    it verifies), not an object and a tampered content are told apart as one by one."""
    _signer, chain, _state = room
    forged = dict(chain[1].pdu)
    forged["signatures"] = {SERVER: {"ed25519:k1": "A" * 86}}
    # Signed with a key this server does not know first, then with the known one.
    two_keys = dict(chain[2].pdu)
    two_keys["signatures"] = {
        SERVER: {"ed25519:a0": "A" * 86, **chain[2].pdu["signatures"][SERVER]}
    }
    tampered = dict(chain[3].pdu)
    tampered["content"] = {"join_rule": "public", "added": "after signing"}
    results = checked_events([chain[0].pdu, forged, two_keys, "no", tampered], V11)

    assert [type(r).__name__ for r in results] == [
        "Event",
        "InvalidPDU",
        "Event",
        "InvalidPDU",
        "Event",
    ]
    assert results[0].event_id == chain[0].event_id  # type: ignore[union-attr]
    assert results[1].errcode == "M_FORBIDDEN"  # type: ignore[union-attr]
    assert results[2].event_id == chain[2].event_id  # type: ignore[union-attr]
    # The tampered one is its event, redacted (check 3).
    assert results[4].event_id == chain[3].event_id  # type: ignore[union-attr]
    assert results[4].content == {"join_rule": "public"}  # type: ignore[union-attr]


class MissingEventsSource(Source):
    """A sender answering POST /get_missing_events with ``gap``, and noting what else it
    is asked."""

    def __init__(self, signer: Signer, chain: list[PDUEvent], gap: list[PDUEvent]) -> None:
        super().__init__(signer, chain)
        self.gap = gap
        self.missing_asked: list[list[str]] = []
        self.state_asked: list[str] = []

    def get_missing_events(
        self, room_id: str, earliest: list[str], latest: list[str], limit: int
    ) -> list[dict[str, Any]]:
        self.missing_asked.append(latest)
        return [event.pdu for event in self.gap]

    def get_state_ids(self, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        self.state_asked.append(event_id)
        return super().get_state_ids(room_id, event_id)


def test_a_pushed_event_whose_prev_events_cannot_be_had_is_dropped(room: Any) -> None:
    """(sytest 50federation/36state) Its sender gives none of the missing events: the
    event is dropped, and the state at what is missing is not asked for (taken from the
    sender, it could name any state for an event that might become the only tip)."""
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    withheld = signer.make("m.room.message", BOB, {"body": "1"}, [chain[-1].event_id], state)
    pushed = signer.make("m.room.message", BOB, {"body": "2"}, [withheld.event_id], state)
    source = MissingEventsSource(signer, chain, gap=[])

    with pytest.raises(InvalidPDU) as refused:
        receive_pdu(pushed.pdu, origin=SERVER, source=source)

    assert refused.value.errcode == "M_FORBIDDEN"
    assert source.missing_asked == [[pushed.event_id]]
    assert source.state_asked == []
    assert not Event.objects.filter(event_id__in=[withheld.event_id, pushed.event_id]).exists()
    assert list(ForwardExtremity.objects.values_list("event_id", flat=True)) == [
        chain[-1].event_id
    ]


def test_a_pulled_event_gets_the_state_at_its_missing_prev_event_from_the_sender(
    room: Any,
) -> None:
    """(sytest 50federation/36state) One round of /get_missing_events: an event it gives
    whose own prev event is still missing takes the state there from /state_ids, rather
    than another round; the prev event itself stays an outlier."""
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    y = signer.make("test_state", BOB, {"body": "y"}, [chain[-1].event_id], state, "Y")
    x = signer.make("m.room.message", BOB, {"body": "x"}, [y.event_id], state)
    c = signer.make("m.room.message", BOB, {"body": "c"}, [x.event_id], state)
    source = MissingEventsSource(signer, chain, gap=[x])

    row = receive_pdu(c.pdu, origin=SERVER, source=source)

    assert not row.outlier
    assert source.missing_asked == [[c.event_id]]
    assert source.state_asked == [y.event_id]
    assert not Event.objects.get(event_id=x.event_id).outlier
    assert Event.objects.get(event_id=y.event_id).outlier
    # Bob's join stays a tip: nothing in the timeline here says Y came after it.
    assert set(ForwardExtremity.objects.values_list("event_id", flat=True)) == {
        chain[-1].event_id,
        c.event_id,
    }


def test_a_redaction_of_an_event_of_another_room_is_never_shown(
    room: Any, api: MatrixTestClient, alice: Persona
) -> None:
    """(sytest 50federation/39redactions) Redactions are shown only once the server would
    apply them ("Handling redactions"), and one naming another room's event never will
    be: kept like a soft-failed event, shown to no one, built on by nobody."""
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    elsewhere = create_room(api, alice)
    target = send(api, alice, elsewhere, "mine")
    redaction = signer.make(
        "m.room.redaction", BOB, {"redacts": target}, [chain[-1].event_id], state
    )

    row = receive_pdu(redaction.pdu, origin=SERVER)

    assert (row.rejected_reason, row.soft_failed) == (None, True)
    assert Event.objects.get(event_id=target).redacted_by is None
    assert list(
        ForwardExtremity.objects.filter(room__room_id=ROOM).values_list("event_id", flat=True)
    ) == [chain[-1].event_id]


def _other_room(signer: Signer, user_id: str) -> PDUEvent:
    """A second remote room, received here, that ``user_id`` joined: the join event."""
    state: dict[tuple[str, str], str] = {}
    events: list[PDUEvent] = []
    for etype, sender, content, state_key in [
        ("m.room.create", ALICE, {"room_version": "11"}, ""),
        ("m.room.member", ALICE, {"membership": "join"}, ALICE),
        ("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, ""),
        ("m.room.join_rules", ALICE, {"join_rule": "public"}, ""),
        ("m.room.member", user_id, {"membership": "join"}, user_id),
    ]:
        prev = [events[-1].event_id] if events else []
        event = signer.make(etype, sender, content, prev, state, state_key, room_id=OTHER_ROOM)
        receive_pdu(event.pdu, origin=SERVER)
        events.append(event)
        state[(etype, state_key)] = event.event_id
    return events[-1]


OTHER_ROOM = "!other:remote.test"
CAROL = "@carol:remote.test"


def test_an_event_citing_another_rooms_auth_event_is_rejected_without_the_edge(
    room: Any,
) -> None:
    """Auth rule 2.5: Carol's join cites her membership of another room as an auth event.
    It is stored rejected (not dropped: it is known, so what follows it can be placed),
    and its auth edges stay in the room."""
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    elsewhere = _other_room(signer, CAROL)
    join = signer.make(
        "m.room.member",
        CAROL,
        {"membership": "join"},
        [chain[-1].event_id],
        {**state, ("m.room.member", CAROL): elsewhere.event_id},
        CAROL,
    )
    assert elsewhere.event_id in join.auth_event_ids

    row = receive_pdu(join.pdu, origin=SERVER)

    assert row.rejected_reason is not None
    assert "belongs to room" in row.rejected_reason
    assert set(row.auth_edges.values_list("auth_event_id", flat=True)) == set(
        join.auth_event_ids
    ) - {elsewhere.event_id}
    assert not Membership.objects.filter(room__room_id=ROOM, user_id=CAROL).exists()
    assert list(
        ForwardExtremity.objects.filter(room__room_id=ROOM).values_list("event_id", flat=True)
    ) == [chain[-1].event_id]


def test_outliers_whose_auth_events_are_in_a_different_room_are_rejected(room: Any) -> None:
    """(sytest 50federation/33room-get-missing-events) S is pushed; /get_missing_events
    gives R, whose prev event Q is missing, so the state at Q comes from /state_ids and Q
    is fetched as an outlier. Q is Carol's join citing her membership of another room:
    rejected, with no edge to it; R, Carol's message, is then placed and rejected (she is
    no member); S, Bob's, is accepted and shown."""
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    elsewhere = _other_room(signer, CAROL)
    q = signer.make(
        "m.room.member",
        CAROL,
        {"membership": "join"},
        [chain[-1].event_id],
        {**state, ("m.room.member", CAROL): elsewhere.event_id},
        CAROL,
    )
    r = signer.make("m.room.message", CAROL, {"body": "R"}, [q.event_id], state)
    s = signer.make("m.room.message", BOB, {"body": "S"}, [r.event_id], state)
    source = MissingEventsSource(signer, chain, gap=[r])

    row = receive_pdu(s.pdu, origin=SERVER, source=source)

    assert source.state_asked == [q.event_id]
    assert (row.outlier, row.rejected_reason, row.soft_failed) == (False, None, False)
    stored_q = Event.objects.get(event_id=q.event_id)
    assert stored_q.outlier
    assert stored_q.rejected_reason is not None
    assert elsewhere.event_id not in stored_q.auth_edges.values_list("auth_event_id", flat=True)
    stored_r = Event.objects.get(event_id=r.event_id)
    assert not stored_r.outlier
    assert stored_r.rejected_reason is not None
    # Bob's join stays a tip too: Q, an outlier, does not place it before S here.
    assert set(
        ForwardExtremity.objects.filter(room__room_id=ROOM).values_list("event_id", flat=True)
    ) == {chain[-1].event_id, s.event_id}
    assert not CurrentState.objects.filter(room__room_id=ROOM, state_key=CAROL).exists()
