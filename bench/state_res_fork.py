"""Cost of resolving a forked room's state (rooms.graph_store.resolve_groups).

    .venv/bin/python bench/state_res_fork.py [--members 1000] [--state 1000] [--bans 20] \
        [--runs 7] [--room-version 12]

Builds, in a throwaway database (Django's test database, created and dropped here; on
PostgreSQL set DATABASE_URL as for the server), a public room with ``members`` joined
members and ``state`` further state events, one member (mod) at power level 50. Then the
room forks at its tip: on one side alice demotes mod; on the other mod sets the topic
and bans ``bans`` members. Each run resolves the states of the two tips, cold (state
group and event caches emptied first, as after a restart) and warm (as a busy server
would); the medians are printed. The goal: under 100 ms cold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TRELLIS_DATA_DIR", tempfile.mkdtemp(prefix="trellis-bench-"))

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from protocol import auth_rules  # noqa: E402
from protocol.room_versions import KNOWN_ROOM_VERSIONS  # noqa: E402
from rooms import event_cache, state  # noqa: E402
from rooms.graph_store import resolve_groups  # noqa: E402
from rooms.models import Event, Room  # noqa: E402
from rooms.services.creation import RoomSpec, do_create_room  # noqa: E402
from rooms.services.events import (  # noqa: E402
    SendContext,
    auth_state_for,
    build_event,
    persist_event,
    send_in_locked_room,
)

ALICE = "@alice:bench.example"
MOD = "@mod:bench.example"


def member(index: int) -> str:
    return f"@user{index}:bench.example"


def build_room(version: str, members: int, state_events: int) -> Room:
    room = do_create_room(
        RoomSpec(
            creator=ALICE,
            room_version=KNOWN_ROOM_VERSIONS[version],
            preset="public_chat",
            power_level_content_override={"users": {MOD: 50}, "ban": 50},
        )
    )
    batch = 200
    senders = [MOD, *(member(i) for i in range(members - 1))]
    for start in range(0, len(senders), batch):
        with transaction.atomic():
            locked = Room.objects.select_for_update().get(pk=room.pk)
            for user_id in senders[start : start + batch]:
                send_in_locked_room(
                    locked,
                    SendContext(sender=user_id),
                    "m.room.member",
                    {"membership": "join"},
                    user_id,
                )
    for start in range(0, state_events, batch):
        with transaction.atomic():
            locked = Room.objects.select_for_update().get(pk=room.pk)
            for index in range(start, min(start + batch, state_events)):
                send_in_locked_room(
                    locked,
                    SendContext(sender=ALICE),
                    "org.example.bench",
                    {"n": index},
                    str(index),
                )
    room.refresh_from_db()
    return room


def send_after(
    room: Room, prev: Event, sender: str, event_type: str, content: dict[str, Any], key: str
) -> Event:
    """An event whose only prev event is ``prev``, built on the state after it: a fork."""
    room_version = KNOWN_ROOM_VERSIONS[room.room_version]
    before = state.load_state(prev.state_group_id)
    keys = auth_rules.auth_types_for_event(room_version, event_type, sender, key, content)
    auth_state = auth_state_for(room_version, dict(before), keys)
    cited = sorted((e for k, e in auth_state.items() if k in keys), key=lambda e: e.event_id)
    prev_event = event_cache.get_events([prev.event_id])[prev.event_id]
    event = build_event(
        room_version,
        room_id=room.room_id,
        sender=sender,
        event_type=event_type,
        content=content,
        state_key=key,
        prev_events=[prev_event],
        auth_events=cited,
        depth=prev.depth + 1,
    )
    auth_rules.check_auth_rules(room_version, event, auth_state)
    with transaction.atomic():
        return persist_event(room, event, state_before=prev.state_group_id)


def fork(room: Room, bans: int) -> tuple[list[Event], list[Event]]:
    """The two sides of the fork, each in order (its tip last)."""
    base = Event.objects.filter(room=room).order_by("-stream_ordering").first()
    assert base is not None
    power = Event.objects.filter(room=room, type="m.room.power_levels").order_by("-pk").first()
    assert power is not None
    demoted = dict(power.pdu["content"])
    demoted["users"] = {**demoted["users"], MOD: 0}
    side_a = [send_after(room, base, ALICE, "m.room.power_levels", demoted, "")]
    side_b = [send_after(room, base, MOD, "m.room.topic", {"topic": "mod was here"}, "")]
    ban = {"membership": "ban"}
    for index in range(bans):
        side_b.append(send_after(room, side_b[-1], MOD, "m.room.member", ban, member(index)))
    return side_a, side_b


def time_resolution(room: Room, groups: list[int], runs: int, *, cold: bool) -> list[float]:
    timings = []
    for _ in range(runs):
        if cold:
            state._state_cache.clear()
            event_cache.forget_all()
        started = time.perf_counter()
        resolve_groups(room, groups)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--state", type=int, default=1000)
    parser.add_argument("--bans", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--room-version", default="12")
    args = parser.parse_args()

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        started = time.perf_counter()
        room = build_room(args.room_version, args.members, args.state)
        side_a, side_b = fork(room, args.bans)
        built = time.perf_counter() - started
        group_ids = [
            group_id
            for group_id in (side_a[-1].state_group_id, side_b[-1].state_group_id)
            if group_id is not None
        ]
        assert len(group_ids) == 2
        resolved = resolve_groups(room, group_ids)
        size = len(state.load_state(group_ids[0]))
        side_b_ids = {event.event_id for event in side_b}
        power = resolved[("m.room.power_levels", "")]
        banned = sum(
            1
            for (etype, _), event_id in resolved.items()
            if etype == "m.room.member" and event_id in side_b_ids
        )
        print(
            f"{connection.vendor}, room version {args.room_version}: {args.members} members, "
            f"{size} state entries, fork: power levels | topic + {args.bans} bans "
            f"(built in {built:.0f} s)"
        )
        print(
            f"resolved: power levels from the demotion: {power == side_a[0].event_id}; "
            f"mod's bans kept: {banned}; mod's topic kept: "
            f"{resolved.get(('m.room.topic', '')) in side_b_ids}"
        )
        cold = time_resolution(room, group_ids, args.runs, cold=True)
        warm = time_resolution(room, group_ids, args.runs, cold=False)
        print(
            f"resolve_groups of the two tips: cold median {statistics.median(cold):.1f} ms "
            f"(min {min(cold):.1f}), warm median {statistics.median(warm):.1f} ms "
            f"(min {min(warm):.1f}), {args.runs} runs each"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
