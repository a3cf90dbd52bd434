"""Authorisation rules, rule family by rule family, across room versions.

Each test builds a small room state by hand (`Room`) and asks whether one event is allowed in
it. Rule numbers in names and docstrings are room version 11's unless said otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from protocol.auth_rules import (
    CREATE_KEY,
    AuthError,
    StateKey,
    auth_types_for_event,
    check_auth_rules,
    check_event_auth_events,
    get_named_level,
    get_required_power_level,
    get_user_power_level,
)
from protocol.events import Event
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import generate_signing_key, sign_json
from protocol.unpadded_base64 import encode_base64
from tests.protocol.dag import (
    ALICE,
    BOB,
    CHARLIE,
    EVELYN,
    REMOTE_RITA,
    event_id_for,
    make_event,
    room_id_for,
)

ALL = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 13)]


def versions(*numbers: int) -> list[Any]:
    return [pytest.param(KNOWN_ROOM_VERSIONS[str(n)], id=f"v{n}") for n in numbers]


ALL_VERSIONS = versions(*range(1, 13))


class Room:
    """A room state built by hand: alice created it and is joined, with the given join rule
    and power levels (alice at 100 before v12, where she is creator)."""

    def __init__(
        self,
        room_version: RoomVersion,
        *,
        join_rule: str | None = "public",
        users: dict[str, Any] | None = None,
        power_levels: dict[str, Any] | None = None,
        create_content: dict[str, Any] | None = None,
    ) -> None:
        self.room_version = room_version
        self.room_id = room_id_for(room_version)
        self._counter = 0
        content: dict[str, Any] = {"room_version": room_version.identifier}
        if not room_version.implicit_room_creator:
            content["creator"] = ALICE
        content.update(create_content or {})
        self.create = self.event(
            "m.room.create", ALICE, state_key="", content=content, name="CREATE"
        )
        self.state: dict[StateKey, Event] = {CREATE_KEY: self.create}
        self.join(ALICE)
        if power_levels is not None or users is not None:
            pl_content = dict(power_levels or {})
            all_users = dict(users or {})
            if not room_version.creators_have_infinite_power:
                all_users = {ALICE: 100, **all_users}
            pl_content.setdefault("users", all_users)
            self.set("m.room.power_levels", ALICE, "", pl_content)
        if join_rule is not None:
            self.set("m.room.join_rules", ALICE, "", {"join_rule": join_rule})

    def event(
        self,
        event_type: str,
        sender: str,
        *,
        state_key: str | None = None,
        content: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Event:
        self._counter += 1
        name = name or f"E{self._counter}"
        return make_event(
            self.room_version,
            event_id_for(self.room_version, name),
            event_type,
            sender,
            state_key=state_key,
            content=content,
            room_id=kwargs.pop("room_id", self.room_id),
            prev_events=kwargs.pop(
                "prev_events", ["$previous"] if event_type != "m.room.create" else []
            ),
            **kwargs,
        )

    def set(self, event_type: str, sender: str, state_key: str, content: dict[str, Any]) -> Event:
        event = self.event(event_type, sender, state_key=state_key, content=content)
        self.state[(event_type, state_key)] = event
        return event

    def join(self, user_id: str) -> Event:
        return self.set("m.room.member", user_id, user_id, {"membership": "join"})

    def membership(self, user_id: str, membership: str, sender: str = ALICE) -> Event:
        return self.set("m.room.member", sender, user_id, {"membership": membership})

    def member_event(self, sender: str, target: str, membership: str, **content: Any) -> Event:
        return self.event(
            "m.room.member",
            sender,
            state_key=target,
            content={"membership": membership, **content},
        )

    def allows(self, event: Event) -> bool:
        try:
            check_auth_rules(self.room_version, event, self.state)
        except AuthError:
            return False
        return True


# --- Auth events selection -------------------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_auth_types_for_a_message(room_version: RoomVersion) -> None:
    types = auth_types_for_event(room_version, "m.room.message", ALICE, None, {})
    expected = {("m.room.power_levels", ""), ("m.room.member", ALICE)}
    if not room_version.room_id_is_create_event_hash:
        # v12 must not cite the create event: the room ID names it.
        expected.add(("m.room.create", ""))
    assert types == expected


def test_auth_types_for_the_create_event_are_empty() -> None:
    assert auth_types_for_event(ALL[0], "m.room.create", ALICE, "", {}) == set()


@pytest.mark.parametrize("membership", ["join", "invite", "knock"])
def test_auth_types_for_membership_include_join_rules(membership: str) -> None:
    types = auth_types_for_event(ALL[10], "m.room.member", BOB, BOB, {"membership": membership})
    assert ("m.room.join_rules", "") in types
    assert ("m.room.member", BOB) in types


def test_auth_types_for_leave_exclude_join_rules() -> None:
    types = auth_types_for_event(ALL[10], "m.room.member", ALICE, BOB, {"membership": "leave"})
    assert ("m.room.join_rules", "") not in types
    assert {("m.room.member", ALICE), ("m.room.member", BOB)} <= types


def test_auth_types_for_third_party_invite_include_the_token() -> None:
    content = {"membership": "invite", "third_party_invite": {"signed": {"token": "abc"}}}
    types = auth_types_for_event(ALL[10], "m.room.member", ALICE, BOB, content)
    assert ("m.room.third_party_invite", "abc") in types


@pytest.mark.parametrize("room_version", versions(7, 8, 12))
def test_auth_types_for_restricted_join_include_the_authorising_user(
    room_version: RoomVersion,
) -> None:
    content = {"membership": "join", "join_authorised_via_users_server": CHARLIE}
    types = auth_types_for_event(room_version, "m.room.member", BOB, BOB, content)
    assert (("m.room.member", CHARLIE) in types) is room_version.restricted_join_rule


# --- Rule 1: m.room.create ---------------------------------------------------------------------


def _create(room_version: RoomVersion, *, sender: str = ALICE, **overrides: Any) -> Event:
    content: dict[str, Any] = {"room_version": room_version.identifier}
    if not room_version.implicit_room_creator:
        content["creator"] = sender
    content.update(overrides.pop("content", {}))
    return make_event(
        room_version,
        event_id_for(room_version, "CREATE"),
        "m.room.create",
        sender,
        state_key="",
        content=content,
        **overrides,
    )


def _allowed(room_version: RoomVersion, event: Event, state: dict[StateKey, Event]) -> bool:
    try:
        check_auth_rules(room_version, event, state)
    except AuthError:
        return False
    return True


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_create_event_is_allowed(room_version: RoomVersion) -> None:
    assert _allowed(room_version, _create(room_version), {})


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_create_event_with_prev_events_is_rejected(room_version: RoomVersion) -> None:
    assert not _allowed(room_version, _create(room_version, prev_events=["$x"]), {})


@pytest.mark.parametrize("room_version", versions(1, 6, 11))
def test_create_event_room_id_must_be_on_the_senders_server(room_version: RoomVersion) -> None:
    event = _create(room_version, room_id="!room:elsewhere.example")
    assert not _allowed(room_version, event, {})


def test_v12_create_event_must_not_have_a_room_id() -> None:
    v12 = KNOWN_ROOM_VERSIONS["12"]
    event = Event({**_create(v12).pdu, "room_id": "!x:example.com"}, v12, event_id="$CREATE")
    assert not _allowed(v12, event, {})


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_create_event_with_unknown_room_version_is_rejected(room_version: RoomVersion) -> None:
    assert not _allowed(room_version, _create(room_version, content={"room_version": "99"}), {})


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_create_event_needs_creator_until_v11(room_version: RoomVersion) -> None:
    content = {"room_version": room_version.identifier}
    event = make_event(
        room_version, "$c:example.com", "m.room.create", ALICE, state_key="", content=content
    )
    assert _allowed(room_version, event, {}) is room_version.implicit_room_creator


@pytest.mark.parametrize("additional", [BOB, [BOB, "not-a-user"], [BOB, 7]])
def test_v12_additional_creators_must_be_user_ids(additional: Any) -> None:
    v12 = KNOWN_ROOM_VERSIONS["12"]
    assert not _allowed(v12, _create(v12, content={"additional_creators": additional}), {})
    assert _allowed(v12, _create(v12, content={"additional_creators": [BOB]}), {})


# --- Rule 2: the auth events themselves (check_event_auth_events) -----------------------------


def _with_auth(
    room: Room, event_type: str, sender: str, auth: list[Event], **kwargs: Any
) -> Event:
    return room.event(event_type, sender, auth_events=[e.event_id for e in auth], **kwargs)


def _auth_map(room: Room, *extra: Event) -> dict[str, Event]:
    events = {event.event_id: event for event in room.state.values()}
    events.update({event.event_id: event for event in extra})
    return events


def _passes_own_auth_events(room: Room, event: Event, **kwargs: Any) -> bool:
    try:
        check_event_auth_events(room.room_version, event, _auth_map(room), **kwargs)
    except AuthError:
        return False
    return True


def _cited(room: Room, *keys: StateKey) -> list[Event]:
    """The state events a message from alice should cite, plus `keys`."""
    wanted = [("m.room.power_levels", ""), ("m.room.member", ALICE), *keys]
    if room.room_version.create_event_in_auth_events:
        wanted.append(CREATE_KEY)
    return [room.state[key] for key in wanted if key in room.state]


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_event_with_the_right_auth_events_passes(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    event = _with_auth(room, "m.room.message", ALICE, _cited(room))
    assert _passes_own_auth_events(room, event)


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_duplicate_auth_event_keys_are_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    older_member = room.event(
        "m.room.member", ALICE, state_key=ALICE, content={"membership": "join"}
    )
    event = _with_auth(room, "m.room.message", ALICE, [*_cited(room), older_member])
    with pytest.raises(AuthError, match="more than one"):
        check_event_auth_events(room_version, event, _auth_map(room, older_member))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_unexpected_auth_event_types_are_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    # Join rules are not selected for a message.
    event = _with_auth(room, "m.room.message", ALICE, _cited(room, ("m.room.join_rules", "")))
    with pytest.raises(AuthError, match="not an expected auth event"):
        check_event_auth_events(room_version, event, _auth_map(room))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_rejected_auth_events_are_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    event = _with_auth(room, "m.room.message", ALICE, _cited(room))
    power_levels = room.state[("m.room.power_levels", "")].event_id
    assert not _passes_own_auth_events(room, event, rejected_event_ids={power_levels})


@pytest.mark.parametrize("room_version", versions(1, 6, 11))
def test_missing_create_auth_event_is_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    cited = [e for e in _cited(room) if e.type != "m.room.create"]
    event = _with_auth(room, "m.room.message", ALICE, cited)
    with pytest.raises(AuthError, match=r"m\.room\.create"):
        check_event_auth_events(room_version, event, _auth_map(room))


@pytest.mark.parametrize("room_version", versions(1, 6, 12))
def test_auth_events_from_another_room_are_rejected(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    foreign = make_event(
        room_version,
        event_id_for(room_version, "FOREIGN"),
        "m.room.power_levels",
        ALICE,
        state_key="",
        content={},
        room_id="!other:example.com",
    )
    cited = [e for e in _cited(room) if e.type != "m.room.power_levels"] + [foreign]
    event = _with_auth(room, "m.room.message", ALICE, cited)
    with pytest.raises(AuthError, match="belongs to room"):
        check_event_auth_events(room_version, event, _auth_map(room, foreign))


def test_v12_citing_the_create_event_is_rejected() -> None:
    room = Room(KNOWN_ROOM_VERSIONS["12"], users={})
    event = _with_auth(room, "m.room.message", ALICE, [*_cited(room), room.create])
    assert not _passes_own_auth_events(room, event)


def test_v12_room_id_must_name_a_known_accepted_create_event() -> None:
    room = Room(KNOWN_ROOM_VERSIONS["12"], users={})
    event = _with_auth(room, "m.room.message", ALICE, _cited(room))
    assert _passes_own_auth_events(room, event)
    assert not _passes_own_auth_events(room, event, rejected_event_ids={room.create.event_id})
    without_create = {k: v for k, v in _auth_map(room).items() if v.type != "m.room.create"}
    with pytest.raises(AuthError, match="create event"):
        check_event_auth_events(room.room_version, event, without_create)


def test_v12_state_with_a_different_create_event_is_rejected() -> None:
    room = Room(KNOWN_ROOM_VERSIONS["12"], users={})
    message = room.event("m.room.message", ALICE, room_id="!someotherroom")
    assert not room.allows(message)


def test_auth_events_are_checked_against_the_rules_too() -> None:
    room = Room(ALL[10], users={})
    room.join(BOB)
    cited = [
        room.state[k] for k in (CREATE_KEY, ("m.room.power_levels", ""), ("m.room.member", BOB))
    ]
    topic = _with_auth(room, "m.room.topic", BOB, cited, state_key="")
    with pytest.raises(AuthError, match="requires 50"):
        check_event_auth_events(room.room_version, topic, _auth_map(room))


# --- Rule 3: m.federate --------------------------------------------------------------------------


@pytest.mark.parametrize("room_version", versions(1, 11, 12))
def test_unfederated_room_refuses_remote_senders(room_version: RoomVersion) -> None:
    room = Room(room_version, create_content={"m.federate": False})
    assert not room.allows(room.member_event(REMOTE_RITA, REMOTE_RITA, "join"))
    assert room.allows(room.member_event(BOB, BOB, "join"))


@pytest.mark.parametrize("room_version", versions(1, 11))
def test_federating_room_accepts_remote_senders(room_version: RoomVersion) -> None:
    room = Room(room_version)
    assert room.allows(room.member_event(REMOTE_RITA, REMOTE_RITA, "join"))


# --- Rule 4.3: joins --------------------------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_creator_may_join_right_after_create(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule=None)
    del room.state[("m.room.member", ALICE)]
    first_join = room.event(
        "m.room.member",
        ALICE,
        state_key=ALICE,
        content={"membership": "join"},
        prev_events=[room.create.event_id],
    )
    assert room.allows(first_join)
    # Not straight after the create event: alice is not invited to a room without join rules.
    later_join = room.member_event(ALICE, ALICE, "join")
    assert not room.allows(later_join)


@pytest.mark.parametrize("room_version", versions(1, 10, 11, 12))
def test_first_join_is_only_for_the_creator(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule=None)
    bob_join = room.event(
        "m.room.member",
        BOB,
        state_key=BOB,
        content={"membership": "join"},
        prev_events=[room.create.event_id],
    )
    assert not room.allows(bob_join)


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_public_room_join(room_version: RoomVersion) -> None:
    room = Room(room_version)
    assert room.allows(room.member_event(BOB, BOB, "join"))
    # Nobody joins someone else.
    assert not room.allows(room.member_event(ALICE, BOB, "join"))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_banned_user_cannot_join(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room.membership(BOB, "ban")
    assert not room.allows(room.member_event(BOB, BOB, "join"))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_invite_only_room_takes_invited_and_joined_users(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="invite")
    assert not room.allows(room.member_event(BOB, BOB, "join"))
    room.membership(BOB, "invite")
    assert room.allows(room.member_event(BOB, BOB, "join"))
    room.join(BOB)
    assert room.allows(room.member_event(BOB, BOB, "join"))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_knock_join_rule_is_invite_like_from_v7(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="knock")
    room.membership(BOB, "invite")
    assert room.allows(room.member_event(BOB, BOB, "join")) is room_version.knock_join_rule


@pytest.mark.parametrize("room_version", versions(1, 10))
def test_unknown_join_rule_refuses_joins(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="private")
    room.membership(BOB, "invite")
    assert not room.allows(room.member_event(BOB, BOB, "join"))


def _restricted_room(room_version: RoomVersion, join_rule: str = "restricted") -> Room:
    room = Room(room_version, join_rule=join_rule, users={CHARLIE: 0}, power_levels={"invite": 0})
    room.join(CHARLIE)
    return room


def _restricted_join(
    room: Room, authoriser: str | None, *, signed_by: str = "example.com"
) -> Event:
    content: dict[str, Any] = {"membership": "join"}
    if authoriser is not None:
        content["join_authorised_via_users_server"] = authoriser
    signatures = {"example.com": {"ed25519:a": "x"}, signed_by: {"ed25519:a": "x"}}
    return room.event(
        "m.room.member", EVELYN, state_key=EVELYN, content=content, signatures=signatures
    )


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_restricted_join_needs_an_authorising_member_from_v8(room_version: RoomVersion) -> None:
    room = _restricted_room(room_version)
    assert room.allows(_restricted_join(room, CHARLIE)) is room_version.restricted_join_rule
    assert not room.allows(_restricted_join(room, None))


@pytest.mark.parametrize("room_version", versions(8, 10, 12))
def test_restricted_join_authoriser_must_be_joined(room_version: RoomVersion) -> None:
    room = _restricted_room(room_version)
    room.membership(CHARLIE, "leave", sender=CHARLIE)
    assert not room.allows(_restricted_join(room, CHARLIE))


@pytest.mark.parametrize("room_version", versions(8, 10, 12))
def test_restricted_join_authoriser_needs_invite_power(room_version: RoomVersion) -> None:
    room = Room(
        room_version, join_rule="restricted", users={CHARLIE: 0}, power_levels={"invite": 10}
    )
    room.join(CHARLIE)
    assert not room.allows(_restricted_join(room, CHARLIE))
    assert room.allows(_restricted_join(room, ALICE))


@pytest.mark.parametrize("room_version", versions(8, 10, 12))
def test_restricted_join_must_be_signed_by_the_authorisers_server(
    room_version: RoomVersion,
) -> None:
    room = _restricted_room(room_version)
    room.join(REMOTE_RITA)
    assert not room.allows(_restricted_join(room, REMOTE_RITA))
    assert room.allows(_restricted_join(room, REMOTE_RITA, signed_by="remote.example"))


@pytest.mark.parametrize("room_version", versions(8, 10))
def test_restricted_room_lets_invited_users_join_without_authoriser(
    room_version: RoomVersion,
) -> None:
    room = _restricted_room(room_version)
    room.membership(EVELYN, "invite")
    assert room.allows(_restricted_join(room, None))


@pytest.mark.parametrize("room_version", versions(9, 10, 12))
def test_knock_restricted_join_rule_from_v10(room_version: RoomVersion) -> None:
    room = _restricted_room(room_version, "knock_restricted")
    assert room.allows(_restricted_join(room, CHARLIE)) is room_version.knock_restricted_join_rule


# --- Rule 4.4: invites ------------------------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_invites(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="invite", users={BOB: 0}, power_levels={"invite": 0})
    room.join(BOB)
    assert room.allows(room.member_event(BOB, EVELYN, "invite"))
    # The sender must be joined.
    assert not room.allows(room.member_event(CHARLIE, EVELYN, "invite"))
    # The target must not be joined or banned.
    assert not room.allows(room.member_event(BOB, ALICE, "invite"))
    room.membership(EVELYN, "ban")
    assert not room.allows(room.member_event(BOB, EVELYN, "invite"))


@pytest.mark.parametrize("room_version", versions(1, 10, 12))
def test_invite_needs_the_invite_level(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 10}, power_levels={"invite": 20})
    room.join(BOB)
    assert not room.allows(room.member_event(BOB, EVELYN, "invite"))
    assert room.allows(room.member_event(ALICE, EVELYN, "invite"))


def _third_party_invite_room(room_version: RoomVersion) -> tuple[Room, dict[str, Any]]:
    """A room with an m.room.third_party_invite from alice, and the identity server's signed
    block for evelyn."""
    identity_key = generate_signing_key("0")
    room = Room(room_version, users={})
    public_key = encode_base64(identity_key.verify_key.encode())
    room.set(
        "m.room.third_party_invite",
        ALICE,
        "tok",
        {
            "display_name": "e...",
            "key_validity_url": "https://id.example/v",
            "public_key": public_key,
            "public_keys": [{"public_key": public_key}],
        },
    )
    signed = sign_json({"mxid": EVELYN, "token": "tok"}, "id.example", identity_key)
    return room, signed


def _redeem(room: Room, signed: dict[str, Any], sender: str = ALICE) -> Event:
    return room.member_event(
        sender,
        signed.get("mxid", EVELYN),
        "invite",
        third_party_invite={"display_name": "e...", "signed": signed},
    )


@pytest.mark.parametrize("room_version", versions(1, 6, 11, 12))
def test_third_party_invite_with_valid_signature(room_version: RoomVersion) -> None:
    room, signed = _third_party_invite_room(room_version)
    assert room.allows(_redeem(room, signed))


@pytest.mark.parametrize("room_version", versions(1, 11))
def test_third_party_invite_refusals(room_version: RoomVersion) -> None:
    room, signed = _third_party_invite_room(room_version)
    room.join(BOB)
    # Only the sender of the m.room.third_party_invite may redeem it.
    assert not room.allows(_redeem(room, signed, sender=BOB))
    # The signature must verify.
    assert not room.allows(_redeem(room, {**signed, "token": "tok", "extra": 1}))
    # mxid must be the state_key.
    wrong_target = room.member_event(
        ALICE, CHARLIE, "invite", third_party_invite={"signed": signed}
    )
    assert not room.allows(wrong_target)
    # The token must name an m.room.third_party_invite in the state.
    del room.state[("m.room.third_party_invite", "tok")]
    assert not room.allows(_redeem(room, signed))


def test_third_party_invite_needs_signed_mxid_and_token() -> None:
    room, signed = _third_party_invite_room(ALL[10])
    no_signed = room.member_event(ALICE, EVELYN, "invite", third_party_invite={})
    assert not room.allows(no_signed)
    assert not room.allows(_redeem(room, {k: v for k, v in signed.items() if k != "token"}))


def test_third_party_invite_of_a_banned_user_is_rejected() -> None:
    room, signed = _third_party_invite_room(ALL[10])
    room.membership(EVELYN, "ban")
    assert not room.allows(_redeem(room, signed))


# --- Rule 4.5: leaves, kicks and unbans -------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_leaving_yourself(room_version: RoomVersion) -> None:
    room = Room(room_version)
    # Never joined: nothing to leave.
    assert not room.allows(room.member_event(BOB, BOB, "leave"))
    room.membership(BOB, "invite")
    assert room.allows(room.member_event(BOB, BOB, "leave"))  # rejecting an invite
    room.join(BOB)
    assert room.allows(room.member_event(BOB, BOB, "leave"))
    room.membership(BOB, "ban")
    assert not room.allows(room.member_event(BOB, BOB, "leave"))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_rescinding_a_knock_from_v7(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="knock")
    room.set("m.room.member", BOB, BOB, {"membership": "knock"})
    assert room.allows(room.member_event(BOB, BOB, "leave")) is room_version.knock_join_rule


@pytest.mark.parametrize("room_version", versions(1, 6, 10, 11))
def test_kicks_need_kick_level_and_more_power_than_the_target(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 50, CHARLIE: 50, EVELYN: 10}, power_levels={"kick": 50})
    for user in (BOB, CHARLIE, EVELYN):
        room.join(user)
    assert room.allows(room.member_event(BOB, EVELYN, "leave"))
    assert not room.allows(room.member_event(BOB, CHARLIE, "leave"))  # equal power
    assert not room.allows(room.member_event(EVELYN, BOB, "leave"))  # below kick level
    room.membership(BOB, "leave", sender=BOB)
    assert not room.allows(room.member_event(BOB, EVELYN, "leave"))  # kicker not joined


@pytest.mark.parametrize("room_version", versions(1, 11, 12))
def test_unban_needs_ban_level_too(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 50}, power_levels={"kick": 50, "ban": 60})
    room.join(BOB)
    room.membership(EVELYN, "ban")
    assert not room.allows(room.member_event(BOB, EVELYN, "leave"))
    assert room.allows(room.member_event(ALICE, EVELYN, "leave"))


# --- Rule 4.6: bans ---------------------------------------------------------------------------


@pytest.mark.parametrize("room_version", versions(1, 6, 11, 12))
def test_bans(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 50, CHARLIE: 50}, power_levels={"ban": 50})
    room.join(BOB)
    room.join(CHARLIE)
    assert room.allows(room.member_event(BOB, EVELYN, "ban"))  # not even in the room
    assert not room.allows(room.member_event(BOB, CHARLIE, "ban"))  # equal power
    assert not room.allows(room.member_event(EVELYN, BOB, "ban"))  # not joined, no power


# --- Rule 4.7: knocks -------------------------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_knock_only_from_v7(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="knock")
    assert room.allows(room.member_event(BOB, BOB, "knock")) is room_version.knock_join_rule


@pytest.mark.parametrize("room_version", versions(7, 11))
def test_knock_refusals(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="knock")
    assert not room.allows(room.member_event(ALICE, BOB, "knock"))  # for someone else
    assert not room.allows(room.member_event(ALICE, ALICE, "knock"))  # already joined
    room.membership(BOB, "invite")
    assert not room.allows(room.member_event(BOB, BOB, "knock"))  # already invited
    room.membership(CHARLIE, "ban")
    assert not room.allows(room.member_event(CHARLIE, CHARLIE, "knock"))
    public = Room(room_version, join_rule="public")
    assert not public.allows(public.member_event(BOB, BOB, "knock"))


@pytest.mark.parametrize("room_version", versions(7, 9, 10, 12))
def test_knock_on_knock_restricted_from_v10(room_version: RoomVersion) -> None:
    room = Room(room_version, join_rule="knock_restricted")
    assert room.allows(room.member_event(BOB, BOB, "knock")) is (
        room_version.knock_restricted_join_rule
    )


@pytest.mark.parametrize("room_version", versions(1, 11))
def test_member_event_needs_state_key_and_known_membership(room_version: RoomVersion) -> None:
    room = Room(room_version)
    assert not room.allows(room.member_event(BOB, BOB, "dance"))
    assert not room.allows(room.event("m.room.member", BOB, state_key=BOB, content={}))
    assert not room.allows(room.event("m.room.member", BOB, content={"membership": "join"}))


# --- Rules 5 to 8: everything else -------------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_sender_must_be_joined(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    assert room.allows(room.event("m.room.message", ALICE, content={"body": "hi"}))
    assert not room.allows(room.event("m.room.message", BOB, content={"body": "hi"}))
    room.membership(BOB, "invite")
    assert not room.allows(room.event("m.room.message", BOB, content={"body": "hi"}))


@pytest.mark.parametrize("room_version", versions(1, 10, 12))
def test_third_party_invite_event_needs_the_invite_level(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 5}, power_levels={"invite": 10, "state_default": 0})
    room.join(BOB)
    invite = room.event("m.room.third_party_invite", BOB, state_key="tok", content={})
    assert not room.allows(invite)
    room.set(
        "m.room.power_levels",
        ALICE,
        "",
        {**room.state[("m.room.power_levels", "")].content, "invite": 5},
    )
    assert room.allows(invite)


@pytest.mark.parametrize("room_version", versions(1, 6, 11, 12))
def test_required_power_level(room_version: RoomVersion) -> None:
    room = Room(
        room_version, users={BOB: 10}, power_levels={"events": {"m.room.name": 5, "m.custom": 20}}
    )
    room.join(BOB)
    # events_default 0 for messages, state_default 50 for state, `events` overrides both.
    assert room.allows(room.event("m.room.message", BOB))
    assert not room.allows(room.event("m.room.topic", BOB, state_key=""))
    assert room.allows(room.event("m.room.name", BOB, state_key=""))
    assert not room.allows(room.event("m.custom", BOB))
    state = room.state
    assert get_required_power_level(room_version, "m.room.topic", True, state) == 50
    assert get_required_power_level(room_version, "m.room.message", False, state) == 0
    assert get_required_power_level(room_version, "m.custom", False, state) == 20


@pytest.mark.parametrize("room_version", versions(1, 11))
def test_without_power_levels_the_creator_has_100(room_version: RoomVersion) -> None:
    room = Room(room_version)
    room.join(BOB)
    assert get_user_power_level(room_version, ALICE, room.state) == 100
    assert get_user_power_level(room_version, BOB, room.state) == 0
    assert get_named_level(room_version, room.state, "kick") == 50
    assert get_named_level(room_version, room.state, "invite") == 0
    assert room.allows(room.event("m.room.topic", ALICE, state_key=""))
    assert not room.allows(room.event("m.room.topic", BOB, state_key=""))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_state_keys_that_are_user_ids_belong_to_that_user(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 100})
    room.join(BOB)
    assert room.allows(room.event("m.custom.state", BOB, state_key=BOB))
    assert not room.allows(room.event("m.custom.state", BOB, state_key=ALICE))


# --- v1..v5 rule 4: m.room.aliases ------------------------------------------------------------


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_aliases_special_case_until_v6(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    # A user who never joined may publish aliases for their own server while the special case
    # lasts; afterwards m.room.aliases is ordinary state.
    aliases = room.event(
        "m.room.aliases",
        REMOTE_RITA,
        state_key="remote.example",
        content={"aliases": ["#a:remote.example"]},
    )
    assert room.allows(aliases) is room_version.special_case_aliases_auth


@pytest.mark.parametrize("room_version", versions(1, 5))
def test_aliases_state_key_must_be_the_senders_server(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    wrong = room.event("m.room.aliases", ALICE, state_key="remote.example", content={})
    assert not room.allows(wrong)
    assert not room.allows(room.event("m.room.aliases", ALICE, content={}))


# --- v1/v2 rule 11: m.room.redaction ------------------------------------------------------------


def _redaction(room: Room, sender: str, redacts: str) -> Event:
    return room.event("m.room.redaction", sender, redacts=redacts)


@pytest.mark.parametrize("room_version", versions(1, 2))
def test_redactions_in_v1_and_v2_need_redact_level_or_same_server(
    room_version: RoomVersion,
) -> None:
    room = Room(room_version, users={}, power_levels={"redact": 50})
    room.join(BOB)
    room.join(REMOTE_RITA)
    assert room.allows(_redaction(room, ALICE, "$theirs:remote.example"))
    assert room.allows(_redaction(room, BOB, "$ours:example.com"))
    assert not room.allows(_redaction(room, BOB, "$theirs:remote.example"))


@pytest.mark.parametrize("room_version", versions(3, 11, 12))
def test_redactions_from_v3_are_ordinary_events(room_version: RoomVersion) -> None:
    room = Room(room_version, users={}, power_levels={"redact": 50})
    room.join(BOB)
    assert room.allows(_redaction(room, BOB, "$someone-elses-event"))


# --- Rule 9: m.room.power_levels --------------------------------------------------------------


def _pl(room: Room, sender: str, content: dict[str, Any]) -> Event:
    return room.event("m.room.power_levels", sender, state_key="", content=content)


def _users(room: Room, users: dict[str, Any]) -> dict[str, Any]:
    if room.room_version.creators_have_infinite_power:
        return users
    return {ALICE: 100, **users}


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_first_power_levels_event_is_allowed(room_version: RoomVersion) -> None:
    room = Room(room_version)
    assert room.allows(_pl(room, ALICE, {"users": _users(room, {BOB: 50})}))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_power_levels_users_must_be_user_ids(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    assert not room.allows(_pl(room, ALICE, {"users": _users(room, {"bob": 50})}))
    assert not room.allows(_pl(room, ALICE, {"users": "everyone"}))


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_stringy_power_levels_until_v10(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    stringy_user = _pl(room, ALICE, {"users": _users(room, {BOB: " +050 "})})
    assert room.allows(stringy_user) is not room_version.enforce_int_power_levels
    stringy_ban = _pl(room, ALICE, {"users": _users(room, {}), "ban": "50"})
    assert room.allows(stringy_ban) is not room_version.enforce_int_power_levels
    stringy_event = _pl(room, ALICE, {"users": _users(room, {}), "events": {"m.room.name": "50"}})
    assert room.allows(stringy_event) is not room_version.enforce_int_power_levels
    not_a_number = _pl(room, ALICE, {"users": _users(room, {BOB: "fifty"})})
    assert not room.allows(not_a_number)


@pytest.mark.parametrize("room_version", ALL_VERSIONS)
def test_float_power_levels_until_v6(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    floaty = _pl(room, ALICE, {"users": _users(room, {BOB: 50.57})})
    assert room.allows(floaty) is room_version.power_levels_accept_floats


@pytest.mark.parametrize("room_version", versions(9, 10))
def test_string_levels_are_read_as_integers_before_v10(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: "40"}, power_levels={"users_default": "5"})
    expected_bob = 0 if room_version.enforce_int_power_levels else 40
    expected_default = 0 if room_version.enforce_int_power_levels else 5
    assert get_user_power_level(room_version, BOB, room.state) == expected_bob
    assert get_user_power_level(room_version, CHARLIE, room.state) == expected_default


@pytest.mark.parametrize("room_version", versions(1, 6, 10, 11, 12))
def test_power_level_changes_must_be_within_the_senders_level(room_version: RoomVersion) -> None:
    room = Room(
        room_version,
        users={BOB: 50, CHARLIE: 50, EVELYN: 10},
        power_levels={"events": {"m.room.power_levels": 50}, "ban": 50},
    )
    room.join(BOB)

    def by_bob(users: dict[str, Any], **levels: Any) -> bool:
        content = {"events": {"m.room.power_levels": 50}, "ban": 50, **levels}
        return room.allows(_pl(room, BOB, {"users": _users(room, users), **content}))

    base = {BOB: 50, CHARLIE: 50, EVELYN: 10}
    assert by_bob({**base, EVELYN: 50})  # raise someone up to his own level
    assert not by_bob({**base, EVELYN: 51})  # above his own level
    assert not by_bob({**base, CHARLIE: 10})  # a peer at his level
    assert not by_bob({BOB: 50, EVELYN: 10})  # removing a peer
    assert by_bob({**base, BOB: 10})  # lowering himself
    assert by_bob({**base, EVELYN: 0})  # lowering someone below him
    assert not by_bob(base, ban=60)  # a scalar level above his own
    assert by_bob(base, ban=40)
    assert not by_bob(base, events={"m.room.power_levels": 50, "m.room.name": 70})


@pytest.mark.parametrize("room_version", versions(1, 5, 6, 11))
def test_notifications_levels_are_checked_from_v6(room_version: RoomVersion) -> None:
    room = Room(room_version, users={BOB: 50}, power_levels={"notifications": {"room": 100}})
    room.join(BOB)
    content = {"users": _users(room, {BOB: 50}), "notifications": {"room": 20}}
    assert room.allows(_pl(room, BOB, content)) is not (
        room_version.limit_notifications_power_levels
    )


@pytest.mark.parametrize("room_version", versions(10, 11))
def test_v10_integer_checks_cover_events_and_notifications(room_version: RoomVersion) -> None:
    room = Room(room_version, users={})
    bad = _pl(room, ALICE, {"users": _users(room, {}), "notifications": {"room": True}})
    assert not room.allows(bad)
    assert not room.allows(_pl(room, ALICE, {"users": _users(room, {}), "events": []}))


# --- Room version 12: creators ------------------------------------------------------------------

V12 = KNOWN_ROOM_VERSIONS["12"]


def test_v12_creators_have_infinite_power() -> None:
    room = Room(V12, users={CHARLIE: 100}, create_content={"additional_creators": [BOB]})
    assert get_user_power_level(V12, ALICE, room.state) == math.inf
    assert get_user_power_level(V12, BOB, room.state) == math.inf
    assert get_user_power_level(V12, CHARLIE, room.state) == 100
    without_power_levels = Room(V12, create_content={"additional_creators": [BOB]})
    assert get_user_power_level(V12, BOB, without_power_levels.state) == math.inf
    assert get_user_power_level(V12, CHARLIE, without_power_levels.state) == 0


def test_v12_additional_creators_are_not_creators_before_v12() -> None:
    v11 = KNOWN_ROOM_VERSIONS["11"]
    room = Room(v11, create_content={"additional_creators": [BOB]})
    assert get_user_power_level(v11, BOB, room.state) == 0


def test_v12_creators_cannot_be_kicked_banned_or_demoted() -> None:
    room = Room(V12, users={CHARLIE: 100}, create_content={"additional_creators": [BOB]})
    room.join(BOB)
    room.join(CHARLIE)
    assert not room.allows(room.member_event(CHARLIE, BOB, "leave"))
    assert not room.allows(room.member_event(CHARLIE, ALICE, "ban"))
    assert room.allows(room.member_event(BOB, CHARLIE, "ban"))
    # Not even a creator may list a creator in `users`.
    assert not room.allows(_pl(room, ALICE, {"users": {CHARLIE: 100, BOB: 0}}))
    assert not room.allows(_pl(room, BOB, {"users": {CHARLIE: 100, BOB: 100}}))
    assert room.allows(_pl(room, BOB, {"users": {CHARLIE: 0}}))


def test_v12_power_levels_listing_a_creator_are_refused_even_first() -> None:
    room = Room(V12)
    assert not room.allows(_pl(room, ALICE, {"users": {ALICE: 100}}))
