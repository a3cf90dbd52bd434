"""The remote-server helper and its reference, checked against protocol/ and the keyring."""

from __future__ import annotations

import random

import pytest

from federation.keyring import get_verify_key
from protocol.events import Event
from protocol.hashing import check_content_hash, compute_event_id
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.signing import (
    SignatureVerifyError,
    servers_required_to_sign_event,
    verify_event_signature,
)
from tests.graph import scenarios
from tests.graph.reference import compute_reference
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.graph.scenarios import SCENARIOS, alice, bob, levels, message
from tests.protocol import dag as hand_dag

VERSIONS = ["10", "11", "12"]
POWER = ("m.room.power_levels", "")
TOPIC = ("m.room.topic", "")


@pytest.mark.django_db
@pytest.mark.parametrize("version", VERSIONS)
def test_signatures_verify_with_the_installed_keys(version: str) -> None:
    room = scenarios.kicked_moderator(version)
    for server in room.servers.values():
        server.install_keys()
    rv = room.room_version
    for pdu in room.delivery_pdus():
        for server_name in servers_required_to_sign_event(pdu, rv):
            server = room.servers[server_name]
            key = get_verify_key(
                server_name,
                server.signing_key.key_id,
                valid_at_ts=pdu["origin_server_ts"],
                for_requests=False,
            )
            verify_event_signature(pdu, server_name, key, rv)


@pytest.mark.parametrize("version", VERSIONS)
def test_event_ids_hashes_and_depths_follow_the_room_version(version: str) -> None:
    room = scenarios.topic_race(version)
    rv = room.room_version
    for event_id, pdu in room.pdus.items():
        assert compute_event_id(pdu, rv) == event_id
        assert check_content_hash(pdu)
        assert Event(pdu, rv).room_id == room.room_id
        prev_depths = [room.pdus[p]["depth"] for p in pdu["prev_events"]]
        assert pdu["depth"] == max(prev_depths, default=0) + 1
    create_id = room.id("CREATE")
    if rv.room_id_is_create_event_hash:
        assert "room_id" not in room.pdus[create_id]
        assert room.room_id == "!" + create_id[1:]
    else:
        assert room.pdus[create_id]["room_id"] == room.room_id
        assert room.pdus[create_id]["content"].get("creator") == (
            None if rv.implicit_room_creator else alice(room)
        )


@pytest.mark.parametrize("version", VERSIONS)
def test_reference_resolves_a_small_fork_as_state_res_does(version: str) -> None:
    """test_state_res.py's test_ban_beats_concurrent_power_levels with real PDUs: alice bans
    bob on one fork while bob re-sends the power levels on the other; the ban wins, bob's power
    levels are accepted where they stand but lose in the resolution. A hand-built RoomDag of
    the same shape resolves to the same events."""
    room = scenarios.base_room(version)
    a, b = alice(room), bob(room)
    room.send(a, "m.room.power_levels", levels(room, {b: 50}), state_key="", name="PA")
    room.member(a, a, "join", name="MA")
    room.member(a, b, "ban", name="MB")
    pb_content = levels(room, {b: 50})
    room.send(b, "m.room.power_levels", pb_content, state_key="", prev=["PA"], name="PB")
    room.merge(a, name="END")

    reference = room.reference
    assert reference.rejected == {}
    assert room.labelled(reference.tips()) == {"END"}
    state = room.named_state(reference.resolved_state())
    assert state[POWER] == "PA"
    assert state[("m.room.member", a)] == "MA"
    assert state[("m.room.member", b)] == "MB"

    rv = KNOWN_ROOM_VERSIONS[version]
    hand = hand_dag.initial_room(rv)
    alice_, bob_ = hand_dag.ALICE, hand_dag.BOB
    pa_content = hand.power_levels({bob_: 50})
    hand.add("PA", "m.room.power_levels", alice_, state_key="", content=pa_content)
    hand.add("MA", "m.room.member", alice_, state_key=alice_, content=hand_dag.member("join"))
    hand.add("MB", "m.room.member", alice_, state_key=bob_, content=hand_dag.member("ban"))
    hand.add(
        "PB",
        "m.room.power_levels",
        bob_,
        state_key="",
        content=hand.power_levels({bob_: 50}),
        prev=["PA"],
    )
    hand_state = hand.named(hand.resolve("MB", "PB"))
    assert hand_state[POWER] == "PA"
    assert hand_state[("m.room.member", alice_)] == "MA"
    assert hand_state[("m.room.member", bob_)] == "MB"


@pytest.mark.parametrize("version", VERSIONS)
def test_scenarios_reject_what_they_mean_to(version: str) -> None:
    expected = {
        "power_levels_race": (
            {"PL_CAROL_ESCALATES", "TOPIC_BOB_DEMOTED", "NAME_CAROL_ON_REJECTED"},
            "PL_ALICE_DEMOTES_BOB",
        ),
        "ban_against_join": (set(), "PL_MODS"),
        "topic_race": ({"TOPIC_CAROL_WRONG_AUTH"}, "PL_MODS"),
        "kicked_moderator": ({"MSG_DAVE_AFTER_KICK"}, "PL_MODS"),
    }
    for name, build in SCENARIOS.items():
        room = build(version)
        rejected, power = expected[name]
        assert room.labelled(room.reference.rejected) == rejected, name
        assert room.labelled(room.reference.tips()) == {"MERGE"}, name
        state = room.named_state(room.reference.resolved_state())
        assert state[POWER] == power, name
    topics = scenarios.topic_race(version)
    assert topics.named_state(topics.reference.resolved_state())[TOPIC] == "TOPIC_ALICE"
    kicked = scenarios.kicked_moderator(version)
    state = kicked.named_state(kicked.reference.resolved_state())
    assert state[("m.room.member", scenarios.dave(kicked))] == "KICK_DAVE"
    # dave's kick of carol and his topic, on the fork that did not know of his kick, lose.
    assert state[("m.room.member", scenarios.carol(kicked))] == "JOIN_CAROL"
    assert TOPIC not in state
    assert state[("m.room.name", "")] == "NAME_TAMPERED"
    assert kicked.event("NAME_TAMPERED").content == {}
    banned = scenarios.ban_against_join(version)
    state = banned.named_state(banned.reference.resolved_state())
    assert state[("m.room.member", scenarios.eve(banned))] == "BAN_EVE"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_reference_does_not_depend_on_the_order_pdus_are_given_in(name: str) -> None:
    room = SCENARIOS[name]("11")
    pdus = room.delivery_pdus()
    random.Random(name).shuffle(pdus)
    again = compute_reference(room.room_version, pdus)
    assert again.rejected == room.reference.rejected
    assert again.state_before == room.reference.state_before
    assert again.resolved_state() == room.reference.resolved_state()


def test_forgeries_fail_the_checks_a_receiver_makes() -> None:
    room = scenarios.base_room("11")
    rv = room.room_version
    a, b = alice(room), bob(room)
    server_a, server_b = room.servers[scenarios.SERVER_A], room.servers[scenarios.SERVER_B]

    honest = room.build(b, "m.room.message", {"body": "hello"})
    bad_signature = room.forge_bad_signature(honest)
    assert compute_event_id(bad_signature, rv) == compute_event_id(honest, rv)
    verify_event_signature(honest, server_b.server_name, server_b.signing_key.verify_key, rv)
    with pytest.raises(SignatureVerifyError):
        verify_event_signature(
            bad_signature, server_b.server_name, server_b.signing_key.verify_key, rv
        )

    # bob's event signed by server A only: B's signature, which it needs, is missing.
    foreign = room.build(b, "m.room.message", {"body": "hi"}, signer=server_a)
    assert server_b.server_name in servers_required_to_sign_event(foreign, rv)
    verify_event_signature(foreign, server_a.server_name, server_a.signing_key.verify_key, rv)
    with pytest.raises(SignatureVerifyError):
        verify_event_signature(foreign, server_b.server_name, server_b.signing_key.verify_key, rv)

    # Content changed after hashing: the hash fails, the signature (over the redacted form)
    # holds, and the reference uses the redacted event.
    tampered = message(room, a, "TAMPERED", content_after_hashing={"body": "not what was hashed"})
    assert not check_content_hash(tampered)
    verify_event_signature(tampered, server_a.server_name, server_a.signing_key.verify_key, rv)
    assert room.reference.redacted == {room.id("TAMPERED")}
    assert room.event("TAMPERED").content == {}
    assert room.id("TAMPERED") not in room.reference.rejected


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_server_answers_as_an_event_source(version: str) -> None:
    room = scenarios.ban_against_join(version)
    server = room.servers[scenarios.SERVER_B]
    merge = room.id("MERGE")

    state_ids, auth_chain_ids = server.get_state_ids(room.room_id, merge)
    assert set(state_ids) == set(room.reference.resolved_state().values())
    assert room.id("CREATE") in auth_chain_ids
    assert room.id("BAN_EVE") in state_ids
    assert room.id("JOIN_EVE") not in {*state_ids, *auth_chain_ids}

    asked = [room.id("BAN_EVE"), "$unknown", merge]
    got = server.get_events(room.room_id, asked)
    assert [Event(pdu, room.room_version).event_id for pdu in got] == [asked[0], merge]
    assert server.get_events("!other:elsewhere.example", asked) == []


def test_one_room_driven_by_several_servers() -> None:
    server_a = RemoteServer("one.example", "k1")
    server_b = RemoteServer("two.example", "k2")
    room = server_a.create_room(server_a.user("ann"), "12")
    room.add_server(server_b)
    ben = server_b.user("ben")
    room.member(ben, ben, "join", name="BEN")
    assert server_a.rooms[room.room_id] is room is server_b.rooms[room.room_id]
    assert set(room.pdus[room.id("BEN")]["signatures"]) == {"two.example"}
    assert isinstance(room, RemoteRoom)
