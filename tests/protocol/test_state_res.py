"""State resolution, as hand-built DAG scenarios.

The first scenarios follow the shape and expected outcome of Synapse's tests/state/test_v2.py;
each starts from `initial_room` (alice creates a public room, bob, charlie and zara join, zara
sends START) and asserts the state a new event merging the forks would see.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from protocol.auth_rules import StateKey
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.state_res import InMemoryStateResStore, resolve_state
from protocol.state_res.store import EventCache
from protocol.state_res.v2 import (
    auth_difference,
    mainline_ordering,
    reverse_topological_power_ordering,
    separate,
)
from tests.protocol.dag import (
    ALICE,
    BOB,
    CHARLIE,
    EVELYN,
    ZARA,
    RoomDag,
    initial_room,
    make_event,
    member,
)

TOPIC = ("m.room.topic", "")
POWER = ("m.room.power_levels", "")
JOIN_RULES = ("m.room.join_rules", "")

V2_VERSIONS = [KNOWN_ROOM_VERSIONS[v] for v in ("2", "6", "10", "11", "12")]
V2_IDS = [f"v{v.identifier}" for v in V2_VERSIONS]

EventSpec = tuple[str, str, str | None, Mapping[str, Any]]


def build(dag: RoomDag, events: Mapping[str, EventSpec], chains: Sequence[Sequence[str]]) -> None:
    """Add `events` (name -> (type, sender, state_key, content)) and END, wired by `chains`.

    A chain `["END", "B", "A", "START"]` means END's prev event is B, B's is A and A's is
    START. Events are added in topological order, ties by name, as Synapse's harness does, so
    `origin_server_ts` follows the same order.
    """
    prevs: dict[str, list[str]] = {name: [] for name in [*events, "END"]}
    for chain in chains:
        for child, parent in itertools.pairwise(chain):
            if parent not in prevs[child]:
                prevs[child].append(parent)
    while pending := [name for name in prevs if name not in dag.events]:
        name = min(n for n in pending if all(p in dag.events for p in prevs[n]))
        spec: EventSpec = ("m.room.message", ZARA, None, {}) if name == "END" else events[name]
        event_type, sender, state_key, content = spec
        dag.add(name, event_type, sender, state_key=state_key, content=content, prev=prevs[name])


def changed_state(
    dag: RoomDag, expected_names: Sequence[str]
) -> tuple[dict[StateKey, str], dict[StateKey, str]]:
    """(expected, actual): the state at END restricted to the expected keys and every key whose
    event differs from the state at START, by event name."""
    expected = {dag.events[name].state_key_tuple(): name for name in expected_names}
    start = dag.state_after["START"]
    end = dag.resolve(*dag.prev_names["END"])
    actual = {
        key: dag.names[event_id]
        for key, event_id in end.items()
        if key in expected or start.get(key) != event_id
    }
    return expected, actual


def topic(sender: str) -> EventSpec:
    return ("m.room.topic", sender, "", {"topic": f"set by {sender}"})


def power(dag: RoomDag, sender: str, users: Mapping[str, int], **extra: Any) -> EventSpec:
    return ("m.room.power_levels", sender, "", dag.power_levels(users, **extra))


# --- Synapse's scenarios -----------------------------------------------------------------


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_ban_beats_concurrent_power_levels(room_version: RoomVersion) -> None:
    """alice bans bob on one fork while bob re-sends the power levels on the other: the ban is
    applied first (alice outranks bob), and bob's power levels then fail."""
    dag = initial_room(room_version)
    events = {
        "PA": power(dag, ALICE, {BOB: 50}),
        "MA": ("m.room.member", ALICE, ALICE, member("join")),
        "MB": ("m.room.member", ALICE, BOB, member("ban")),
        "PB": power(dag, BOB, {BOB: 50}),
    }
    build(dag, events, [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]])
    expected, actual = changed_state(dag, ["PA", "MA", "MB"])
    assert actual == expected


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_join_rule_evasion(room_version: RoomVersion) -> None:
    """evelyn joins on a fork concurrent with the room leaving `public`: her join is replayed
    after the join rules change and fails."""
    dag = initial_room(room_version)
    events = {
        # As in Synapse: a join rules event without `join_rule` reads as invite-only.
        "JR": ("m.room.join_rules", ALICE, "", {"join_rules": "private"}),
        "ME": ("m.room.member", EVELYN, EVELYN, member("join")),
    }
    build(dag, events, [["END", "JR", "START"], ["END", "ME", "START"]])
    expected, actual = changed_state(dag, ["JR"])
    assert actual == expected


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_offtopic_power_levels(room_version: RoomVersion) -> None:
    """A chain of power levels changes (alice -> bob -> charlie) beats the older one it
    extends."""
    dag = initial_room(room_version)
    events = {
        "PA": power(dag, ALICE, {BOB: 50}),
        "PB": power(dag, BOB, {BOB: 50, CHARLIE: 50}),
        "PC": power(dag, CHARLIE, {BOB: 50, CHARLIE: 0}),
    }
    build(dag, events, [["END", "PC", "PB", "PA", "START"], ["END", "PA"]])
    expected, actual = changed_state(dag, ["PC"])
    assert actual == expected


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_topic_basic(room_version: RoomVersion) -> None:
    """alice demotes bob (PA2) while bob re-asserts his level (PB) and sets a topic (T3): the
    demotion wins, and with it alice's topic."""
    dag = initial_room(room_version)
    events = {
        "T1": topic(ALICE),
        "PA1": power(dag, ALICE, {BOB: 50}),
        "T2": topic(ALICE),
        "PA2": power(dag, ALICE, {BOB: 0}),
        "PB": power(dag, BOB, {BOB: 50}),
        "T3": topic(BOB),
    }
    build(
        dag,
        events,
        [["END", "PA2", "T2", "PA1", "T1", "START"], ["END", "T3", "PB", "PA1"]],
    )
    expected, actual = changed_state(dag, ["PA2", "T2"])
    assert actual == expected


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_topic_reset(room_version: RoomVersion) -> None:
    """bob sets a topic and is then banned; merging with a fork that only saw T1 must not
    keep the banned user's topic... it goes back to T1, with the ban and power levels kept."""
    dag = initial_room(room_version)
    events = {
        "T1": topic(ALICE),
        "PA": power(dag, ALICE, {BOB: 50}),
        "T2": topic(BOB),
        "MB": ("m.room.member", ALICE, BOB, member("ban")),
    }
    build(dag, events, [["END", "MB", "T2", "PA", "T1", "START"], ["END", "T1"]])
    expected, actual = changed_state(dag, ["T1", "MB", "PA"])
    assert actual == expected


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_topic(room_version: RoomVersion) -> None:
    """A longer version of topic_basic, with a message merging the forks before alice's last
    topic: the demotion wins and T4 is the topic."""
    dag = initial_room(room_version)
    events = {
        "T1": topic(ALICE),
        "PA1": power(dag, ALICE, {BOB: 50}),
        "T2": topic(ALICE),
        "PA2": power(dag, ALICE, {BOB: 0}),
        "PB": power(dag, BOB, {BOB: 50}),
        "T3": topic(BOB),
        "MZ1": ("m.room.message", ZARA, None, {"body": "merge"}),
        "T4": topic(ALICE),
    }
    build(
        dag,
        events,
        [
            ["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
            ["END", "MZ1", "T3", "PB", "PA1"],
        ],
    )
    expected, actual = changed_state(dag, ["T4", "PA2"])
    assert actual == expected


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_mainline_sort(room_version: RoomVersion) -> None:
    """T4 is sent after T3, but T3 is based on the newer power levels (PA2 is on the mainline,
    PB is not), so T3 is replayed last and wins."""
    dag = initial_room(room_version)
    events = {
        "T1": topic(ALICE),
        "PA1": power(dag, ALICE, {BOB: 50}),
        "T2": topic(ALICE),
        "PA2": power(dag, ALICE, {BOB: 50}, events={"m.room.power_levels": 100}),
        "PB": power(dag, BOB, {BOB: 50}),
        "T3": topic(BOB),
        "T4": topic(ALICE),
    }
    build(
        dag,
        events,
        [["END", "T3", "PA2", "T2", "PA1", "T1", "START"], ["END", "T4", "PB", "PA1"]],
    )
    expected, actual = changed_state(dag, ["T3", "PA2"])
    assert actual == expected


# --- More scenarios ------------------------------------------------------------------------


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_concurrent_power_levels_authorised_change_replays_last(room_version: RoomVersion) -> None:
    """alice (100) and bob (50) change the power levels at once. alice's change is replayed
    first; bob's is replayed on top of it and is allowed there, so it wins."""
    dag = initial_room(room_version)
    dag.add("PA1", "m.room.power_levels", ALICE, state_key="", content=dag.power_levels({BOB: 50}))
    dag.add(
        "PA",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50, CHARLIE: 10}),
        prev=["PA1"],
    )
    dag.add(
        "PB",
        "m.room.power_levels",
        BOB,
        state_key="",
        content=dag.power_levels({BOB: 50, ZARA: 10}),
        prev=["PA1"],
    )
    resolved = dag.named(dag.resolve("PA", "PB"))
    assert resolved[POWER] == "PB"


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_concurrent_power_levels_unauthorised_change_is_dropped(
    room_version: RoomVersion,
) -> None:
    """As above, but bob's version removes charlie's new 50, which bob (50) may not touch once
    alice's change is in: alice's power levels stand."""
    dag = initial_room(room_version)
    dag.add("PA1", "m.room.power_levels", ALICE, state_key="", content=dag.power_levels({BOB: 50}))
    dag.add(
        "PA",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50, CHARLIE: 50}),
        prev=["PA1"],
    )
    dag.add(
        "PB",
        "m.room.power_levels",
        BOB,
        state_key="",
        content=dag.power_levels({BOB: 50, ZARA: 10}),
        prev=["PA1"],
    )
    resolved = dag.named(dag.resolve("PA", "PB"))
    assert resolved[POWER] == "PA"


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_ban_races_join(room_version: RoomVersion) -> None:
    """evelyn joins the public room while alice bans her on another fork: the ban, a power
    event, is replayed first, and evelyn's join then fails."""
    dag = initial_room(room_version)
    dag.add(
        "ME", "m.room.member", EVELYN, state_key=EVELYN, content=member("join"), prev=["START"]
    )
    dag.add("BAN", "m.room.member", ALICE, state_key=EVELYN, content=member("ban"), prev=["START"])
    resolved = dag.named(dag.resolve("ME", "BAN"))
    assert resolved[("m.room.member", EVELYN)] == "BAN"


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_join_rules_public_to_invite_with_concurrent_join(room_version: RoomVersion) -> None:
    """alice makes the room invite-only while evelyn joins on another fork: evelyn is not in
    the merged state. charlie, who joined before the change, stays."""
    dag = initial_room(room_version)
    dag.add(
        "JR",
        "m.room.join_rules",
        ALICE,
        state_key="",
        content={"join_rule": "invite"},
        prev=["START"],
    )
    dag.add(
        "ME", "m.room.member", EVELYN, state_key=EVELYN, content=member("join"), prev=["START"]
    )
    resolved = dag.named(dag.resolve("JR", "ME"))
    assert resolved[JOIN_RULES] == "JR"
    assert ("m.room.member", EVELYN) not in resolved
    assert resolved[("m.room.member", CHARLIE)] == "IMC"


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_topic_conflict_breaks_ties_on_origin_server_ts(room_version: RoomVersion) -> None:
    """Two topics on the same power levels: the one with the later origin_server_ts is
    replayed last and wins, whatever the event IDs."""
    dag = initial_room(room_version)
    dag.add(
        "TA",
        "m.room.topic",
        ALICE,
        state_key="",
        content={"topic": "a"},
        prev=["START"],
        origin_server_ts=900_000,
    )
    dag.add(
        "TB",
        "m.room.topic",
        ALICE,
        state_key="",
        content={"topic": "b"},
        prev=["START"],
        origin_server_ts=800_000,
    )
    assert dag.named(dag.resolve("TA", "TB"))[TOPIC] == "TA"


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_topic_conflict_breaks_equal_timestamps_on_event_id(room_version: RoomVersion) -> None:
    dag = initial_room(room_version)
    dag.add(
        "TB",
        "m.room.topic",
        ALICE,
        state_key="",
        content={"topic": "b"},
        prev=["START"],
        origin_server_ts=900_000,
    )
    dag.add(
        "TA",
        "m.room.topic",
        ALICE,
        state_key="",
        content={"topic": "a"},
        prev=["START"],
        origin_server_ts=900_000,
    )
    # $TB sorts after $TA, so it is replayed last.
    assert dag.named(dag.resolve("TA", "TB"))[TOPIC] == "TB"


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_demoted_moderators_later_events_are_rejected(room_version: RoomVersion) -> None:
    """bob is a moderator (50). alice demotes him; concurrently bob kicks charlie and sets the
    topic. After the merge the demotion holds, charlie is still joined and there is no topic."""
    dag = initial_room(room_version)
    dag.add(
        "PA1",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
    )
    dag.add(
        "PA2",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({}),
        prev=["PA1"],
    )
    dag.add("KICK", "m.room.member", BOB, state_key=CHARLIE, content=member("leave"), prev=["PA1"])
    dag.add(
        "TB", "m.room.topic", BOB, state_key="", content={"topic": "bob was here"}, prev=["KICK"]
    )
    resolved = dag.named(dag.resolve("PA2", "TB"))
    assert resolved[POWER] == "PA2"
    assert resolved[("m.room.member", CHARLIE)] == "IMC"
    assert TOPIC not in resolved


@pytest.mark.parametrize("room_version", V2_VERSIONS, ids=V2_IDS)
def test_unconflicted_forks_merge(room_version: RoomVersion) -> None:
    """Two forks that each add a different key just combine."""
    dag = initial_room(room_version)
    dag.add(
        "ME", "m.room.member", EVELYN, state_key=EVELYN, content=member("join"), prev=["START"]
    )
    dag.add("T", "m.room.topic", ALICE, state_key="", content={"topic": "t"}, prev=["START"])
    resolved = dag.named(dag.resolve("ME", "T"))
    assert resolved[("m.room.member", EVELYN)] == "ME"
    assert resolved[TOPIC] == "T"


# --- Room version 12: creators ---------------------------------------------------------------

V12 = KNOWN_ROOM_VERSIONS["12"]


def _v12_room_with_additional_creator() -> RoomDag:
    """v12 room created by alice with bob as an additional creator; charlie holds 100."""
    dag = RoomDag(V12)
    dag.add(
        "CREATE",
        "m.room.create",
        ALICE,
        state_key="",
        content={"room_version": "12", "additional_creators": [BOB]},
        prev=[],
    )
    dag.add("IMA", "m.room.member", ALICE, state_key=ALICE, content=member("join"))
    dag.add(
        "IPOWER", "m.room.power_levels", ALICE, state_key="", content={"users": {CHARLIE: 100}}
    )
    dag.add("IJR", "m.room.join_rules", ALICE, state_key="", content={"join_rule": "public"})
    dag.add("IMB", "m.room.member", BOB, state_key=BOB, content=member("join"))
    dag.add("IMC", "m.room.member", CHARLIE, state_key=CHARLIE, content=member("join"))
    dag.add("IMZ", "m.room.member", ZARA, state_key=ZARA, content=member("join"))
    dag.add("START", "m.room.message", ZARA, content={"body": "start"})
    return dag


def test_v12_additional_creator_cannot_be_kicked_or_banned() -> None:
    """charlie (100, the highest level a non-creator can hold) tries to kick bob, an
    additional creator, and ban alice, the creator: both fail, bob's power is unbounded."""
    dag = _v12_room_with_additional_creator()
    dag.add(
        "KICK_BOB",
        "m.room.member",
        CHARLIE,
        state_key=BOB,
        content=member("leave"),
        prev=["START"],
    )
    dag.add(
        "BAN_ALICE",
        "m.room.member",
        CHARLIE,
        state_key=ALICE,
        content=member("ban"),
        prev=["KICK_BOB"],
    )
    dag.add("T", "m.room.topic", BOB, state_key="", content={"topic": "t"}, prev=["START"])
    resolved = dag.named(dag.resolve("BAN_ALICE", "T"))
    assert resolved[("m.room.member", BOB)] == "IMB"
    assert resolved[("m.room.member", ALICE)] == "IMA"
    assert resolved[TOPIC] == "T"


def test_v12_creator_power_is_replayed_first_and_wins() -> None:
    """bob (additional creator) demotes charlie while charlie promotes zara: bob's change is
    replayed first (infinite power sorts first), and charlie's then fails."""
    dag = _v12_room_with_additional_creator()
    dag.add(
        "PB",
        "m.room.power_levels",
        BOB,
        state_key="",
        content={"users": {CHARLIE: 0}},
        prev=["START"],
        origin_server_ts=2_000_000,
    )
    dag.add(
        "PC",
        "m.room.power_levels",
        CHARLIE,
        state_key="",
        content={"users": {CHARLIE: 100, ZARA: 50}},
        prev=["START"],
        origin_server_ts=1_000_000,
    )
    assert dag.named(dag.resolve("PB", "PC"))[POWER] == "PB"


def test_v12_power_levels_listing_a_creator_lose_to_a_valid_change() -> None:
    """charlie tries to give bob (a creator) a level, alice lists herself: both are refused
    (creators may not appear in `users`), and alice's valid change on a third fork wins."""
    dag = _v12_room_with_additional_creator()
    dag.add(
        "PC",
        "m.room.power_levels",
        CHARLIE,
        state_key="",
        content={"users": {CHARLIE: 100, BOB: 0}},
        prev=["START"],
    )
    dag.add(
        "PA",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content={"users": {CHARLIE: 100, ALICE: 100}},
        prev=["START"],
    )
    dag.add(
        "PZ",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content={"users": {CHARLIE: 100, ZARA: 50}},
        prev=["START"],
    )
    resolved = dag.named(dag.resolve("PC", "PA", "PZ"))
    assert resolved[POWER] == "PZ"


def test_v12_power_levels_conflict_with_no_valid_candidate_leaves_no_power_levels() -> None:
    """Neither conflicting power levels event passes and the key is conflicted, so the
    resolved state has none (the auth rules then fall back to the defaults and the creators)."""
    dag = _v12_room_with_additional_creator()
    dag.add(
        "PC",
        "m.room.power_levels",
        CHARLIE,
        state_key="",
        content={"users": {CHARLIE: 100, BOB: 0}},
        prev=["START"],
    )
    dag.add(
        "PA",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content={"users": {CHARLIE: 100, ALICE: 100}},
        prev=["START"],
    )
    assert POWER not in dag.resolve("PC", "PA")


# --- v2 against v2.1: the two problems MSC4297 fixes -----------------------------------------

V11 = KNOWN_ROOM_VERSIONS["11"]


@pytest.mark.parametrize(
    ("room_version", "expected"), [(V11, None), (V12, "JR2")], ids=["v11", "v12"]
)
def test_conflicted_join_rules_replayed_from_empty_state(
    room_version: RoomVersion, expected: str | None
) -> None:
    """Both forks agree alice has left; one reports an outdated join rules event. v2 replays
    the join rules on the unconflicted state, where alice is not joined, and loses them both;
    v2.1 starts from an empty state, authorises them by their own auth events and keeps the
    newer one."""
    dag = initial_room(room_version)
    dag.add(
        "JR1",
        "m.room.join_rules",
        ALICE,
        state_key="",
        content={"join_rule": "invite"},
        prev=["START"],
    )
    dag.add("JR2", "m.room.join_rules", ALICE, state_key="", content={"join_rule": "public"})
    dag.add("LEAVE", "m.room.member", ALICE, state_key=ALICE, content=member("leave"))
    current = dag.state_after["LEAVE"]
    outdated = {**current, JOIN_RULES: dag.id("JR1")}

    resolved = dag.named(resolve_state(room_version, [current, outdated], dag.store))

    assert resolved.get(JOIN_RULES) == expected
    assert resolved[("m.room.member", ALICE)] == "LEAVE"


@pytest.mark.parametrize(
    ("room_version", "expected"), [(V11, "IPOWER"), (V12, "P2")], ids=["v11", "v12"]
)
def test_conflicted_state_subgraph_replays_intermediate_power_levels(
    room_version: RoomVersion, expected: str
) -> None:
    """alice promotes bob (P1), evelyn joins, bob promotes charlie (P2). One fork reports the
    original power levels although its evelyn join cites P1, so P1 is in every auth chain and
    not in the auth difference. v2 replays only IPOWER and P2, and P2 fails on IPOWER; v2.1
    adds P1, which lies on the auth path from P2 to IPOWER, and P2 stands."""
    dag = initial_room(room_version)
    dag.add(
        "P1",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
    )
    dag.add("ME", "m.room.member", EVELYN, state_key=EVELYN, content=member("join"))
    dag.add(
        "P2",
        "m.room.power_levels",
        BOB,
        state_key="",
        content=dag.power_levels({BOB: 50, CHARLIE: 50}),
    )
    current = dag.state_after["P2"]
    outdated = {**current, POWER: dag.id("IPOWER")}

    resolved = dag.named(resolve_state(room_version, [current, outdated], dag.store))

    assert resolved[POWER] == expected


@pytest.mark.parametrize(
    ("room_version", "expected"), [(V11, "PX"), (V12, None)], ids=["v11", "v12"]
)
def test_rejected_auth_events_do_not_fill_gaps(
    room_version: RoomVersion, expected: str | None
) -> None:
    """alice's join was (say) rejected. v2.1 starts from an empty state and may only fill
    alice's membership from the power levels events' auth events, which it must not take from
    a rejected event, so neither power levels event passes. v2 reads alice's membership from
    the unconflicted state, where the rule about rejected auth events does not apply."""
    dag = initial_room(room_version)
    dag.add(
        "PX",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
    )
    dag.store.mark_rejected(dag.id("IMA"))

    resolved = dag.named(
        resolve_state(room_version, [dag.state_after["START"], dag.state_after["PX"]], dag.store)
    )

    assert resolved.get(POWER) == expected


# --- Room version 1 ------------------------------------------------------------------------

V1 = KNOWN_ROOM_VERSIONS["1"]


def test_v1_higher_depth_topic_wins() -> None:
    dag = initial_room(V1)
    dag.add(
        "TA",
        "m.room.topic",
        ALICE,
        state_key="",
        content={"topic": "a"},
        prev=["START"],
        origin_server_ts=9_000_000,
    )
    dag.add("M1", "m.room.message", ALICE, content={"body": "1"}, prev=["START"])
    dag.add("M2", "m.room.message", ALICE, content={"body": "2"})
    dag.add("TB", "m.room.topic", ALICE, state_key="", content={"topic": "b"})
    assert dag.events["TB"].depth > dag.events["TA"].depth
    assert dag.named(dag.resolve("TA", "TB"))[TOPIC] == "TB"


def test_v1_later_power_levels_must_pass_auth_on_the_earlier() -> None:
    """Power levels conflicts replay from the lowest depth: alice's demotion of bob goes in
    first, and bob's deeper change is then refused."""
    dag = initial_room(V1)
    dag.add(
        "PA1",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
    )
    dag.add("PA2", "m.room.power_levels", ALICE, state_key="", content=dag.power_levels({}))
    dag.add("M1", "m.room.message", BOB, content={"body": "1"}, prev=["PA1"])
    dag.add("M2", "m.room.message", BOB, content={"body": "2"})
    dag.add(
        "PB",
        "m.room.power_levels",
        BOB,
        state_key="",
        content=dag.power_levels({BOB: 50, ZARA: 10}),
    )
    assert dag.events["PB"].depth > dag.events["PA2"].depth
    assert dag.named(dag.resolve("PA2", "PB"))[POWER] == "PA2"


def test_v1_ban_beats_banned_users_deeper_topic() -> None:
    """bob's membership conflict (join vs ban) resolves to the ban before other keys, so bob's
    topic, though deeper than alice's, fails auth and alice's stands."""
    dag = initial_room(V1)
    dag.add(
        "PA",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
    )
    dag.add("MB", "m.room.member", ALICE, state_key=BOB, content=member("ban"), prev=["PA"])
    dag.add("TA", "m.room.topic", ALICE, state_key="", content={"topic": "a"})
    dag.add("M1", "m.room.message", BOB, content={"body": "1"}, prev=["PA"])
    dag.add("M2", "m.room.message", BOB, content={"body": "2"})
    dag.add("TB", "m.room.topic", BOB, state_key="", content={"topic": "b"})
    assert dag.events["TB"].depth > dag.events["TA"].depth
    resolved = dag.named(dag.resolve("TA", "TB"))
    assert resolved[("m.room.member", BOB)] == "MB"
    assert resolved[TOPIC] == "TA"


def test_v1_key_missing_from_one_state_is_not_a_conflict() -> None:
    dag = initial_room(V1)
    dag.add("T", "m.room.topic", ZARA, state_key="", content={"topic": "t"}, prev=["START"])
    # zara (0) could not set the topic, but v1 only re-checks conflicting keys.
    assert dag.named(dag.resolve("T", "START"))[TOPIC] == "T"


# --- Building blocks -----------------------------------------------------------------------


def test_resolving_one_state_is_the_identity() -> None:
    store = InMemoryStateResStore()
    state = {("m.room.topic", ""): "$t"}
    assert resolve_state(V11, [state], store) == state
    assert resolve_state(V11, [], store) == {}


def test_separate_treats_missing_keys_as_conflicted() -> None:
    unconflicted, conflicted = separate(
        [{("a", ""): "$1", ("b", ""): "$2"}, {("a", ""): "$1", ("b", ""): "$3"}, {("a", ""): "$1"}]
    )
    assert unconflicted == {("a", ""): "$1"}
    assert conflicted == {("b", ""): {"$2", "$3"}}


def test_auth_difference_counts_the_state_events_themselves() -> None:
    """c cites b cites a. States {a, b} and {c}: only c is outside the other's chain."""
    a = make_event(V11, "$a", "m.room.member", ALICE, state_key="")
    b = make_event(V11, "$b", "m.room.member", ALICE, state_key="", auth_events=["$a"])
    c = make_event(V11, "$c", "m.room.member", ALICE, state_key="", auth_events=["$b"])
    store = InMemoryStateResStore([a, b, c])
    assert store.get_auth_chain(["$c"]) == {"$a", "$b"}
    state_sets = [{("a", ""): "$a", ("b", ""): "$b"}, {("c", ""): "$c"}]
    assert auth_difference(state_sets, store) == {"$c"}


def test_v12_auth_chain_includes_the_implied_create_event() -> None:
    dag = _v12_room_with_additional_creator()
    assert dag.id("CREATE") not in dag.events["IMB"].auth_event_ids
    assert dag.id("CREATE") in dag.store.get_auth_chain([dag.id("IMB")])


def test_reverse_topological_power_ordering() -> None:
    """Auth events come first; among ready events the higher-powered sender goes first, then
    the earlier origin_server_ts, then the smaller event ID."""
    dag = initial_room(V11)
    dag.add(
        "P",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
        origin_server_ts=5,
    )
    # bob's join rules change is the earliest event, but cites P and bob has only 50.
    dag.add(
        "JB",
        "m.room.join_rules",
        BOB,
        state_key="",
        content={"join_rule": "invite"},
        prev=["P"],
        origin_server_ts=1,
    )
    dag.add(
        "KA2",
        "m.room.member",
        ALICE,
        state_key=ZARA,
        content=member("leave"),
        prev=["P"],
        origin_server_ts=30,
    )
    dag.add(
        "KA1",
        "m.room.member",
        ALICE,
        state_key=CHARLIE,
        content=member("leave"),
        prev=["P"],
        origin_server_ts=20,
    )
    dag.add(
        "KA3",
        "m.room.member",
        ALICE,
        state_key=EVELYN,
        content=member("ban"),
        prev=["P"],
        origin_server_ts=20,
    )
    ids = [dag.id(n) for n in ("JB", "KA2", "KA1", "KA3", "P")]
    ordered = reverse_topological_power_ordering(V11, ids, EventCache(dag.store))
    assert [dag.names[i] for i in ordered] == ["P", "KA1", "KA3", "KA2", "JB"]


def test_mainline_ordering() -> None:
    """Events whose power levels ancestry meets the mainline at an older power levels event
    sort first; ties go by origin_server_ts."""
    dag = initial_room(V11)
    dag.add(
        "PA1",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 50}),
        prev=["START"],
    )
    dag.add("T_OLD", "m.room.topic", ALICE, state_key="", content={}, origin_server_ts=900)
    dag.add(
        "PA2",
        "m.room.power_levels",
        ALICE,
        state_key="",
        content=dag.power_levels({BOB: 60}),
        prev=["PA1"],
    )
    dag.add("T_NEW", "m.room.topic", ALICE, state_key="", content={}, origin_server_ts=100)
    dag.add(
        "PB",
        "m.room.power_levels",
        BOB,
        state_key="",
        content=dag.power_levels({BOB: 50, ZARA: 1}),
        prev=["PA1"],
    )
    dag.add("T_SIDE", "m.room.topic", BOB, state_key="", content={}, origin_server_ts=50)
    ids = [dag.id(n) for n in ("T_NEW", "T_SIDE", "T_OLD")]
    # T_SIDE cites PB, which reaches the mainline of PA2 at PA1, like T_OLD: then by timestamp.
    ordered = mainline_ordering(ids, dag.id("PA2"), EventCache(dag.store))
    assert [dag.names[i] for i in ordered] == ["T_SIDE", "T_OLD", "T_NEW"]
    # alice's join cites no power levels at all: its position is infinite and it goes first.
    with_join = [*ids, dag.id("IMA")]
    ordered = mainline_ordering(with_join, dag.id("PA2"), EventCache(dag.store))
    assert [dag.names[i] for i in ordered] == ["IMA", "T_SIDE", "T_OLD", "T_NEW"]
    # Based on IPOWER every topic's ancestry reaches the mainline at IPOWER: timestamps decide.
    ordered = mainline_ordering(ids, dag.id("IPOWER"), EventCache(dag.store))
    assert [dag.names[i] for i in ordered] == ["T_SIDE", "T_NEW", "T_OLD"]
