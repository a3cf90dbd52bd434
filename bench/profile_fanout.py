"""A display-name change of a user in many rooms, against a real server (issue 19): does
the fan-out of the new m.room.member events hold up the user's other requests?

    TRELLIS_DATA_DIR=$(mktemp -d) .venv/bin/python bench/profile_fanout.py [--rooms 500]
        [--quiet-s 15] [--interval 0.1] [--bind 127.0.0.1:38069]
    DATABASE_URL=postgres://root@127.0.0.1:5432/NAME REDIS_URL=... .venv/bin/python ...

On an empty database it makes the user (alice) and ``rooms`` rooms she created, in this
process through the services (rooms.services.creation); a database this benchmark
filled before is used as it is. Then it starts the server
(``python -m config.launcher``, as ``make run`` does, with its Celery worker thread; rate
limits off) and, as alice on two devices, runs two loops one request at a time, each
waiting ``interval`` between requests: one sends messages to her first room, the other
calls /sync (incremental, timeout 0) and watches for her new member events. First
``quiet-s`` seconds alone (``without``); then PUT /profile/{userId}/displayname is timed
and the loops go on (``during``) until /sync has shown the new member event in every
room. Prints the PUT's latency, the fan-out's duration, and p50/p95/max of the sends and
of the syncs in each phase.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services.registration import do_create_user  # noqa: E402
from bench.live_server import C, Server, login, percentile, room_path  # noqa: E402
from rooms.services.creation import RoomSpec, do_create_room  # noqa: E402

PASSWORD = "bench-fanout-pw-19"


def fill(rooms: int) -> None:
    alice = do_create_user("alice", PASSWORD)
    start = time.perf_counter()
    for n in range(rooms):
        do_create_room(RoomSpec(creator=alice.user_id, preset="private_chat", name=f"r{n}"))
    print(f"{rooms} rooms made in {time.perf_counter() - start:.0f} s", file=sys.stderr)


class Loops:
    """The sender and the syncer, recording (phase, milliseconds) per request."""

    def __init__(self, server: Server, send_token: str, sync_token: str, args: Any) -> None:
        self.server, self.args = server, args
        self.sender = server.client(send_token)
        self.syncer = server.client(sync_token)
        self.phase = "without"
        self.stop = threading.Event()
        self.sends: list[tuple[str, float]] = []
        self.syncs: list[tuple[str, float]] = []
        self.new_name: str | None = None
        self.renamed_rooms: set[str] = set()
        self.all_renamed = threading.Event()
        self.user_id = ""
        joined, _ = self.sender.ok("GET", f"{C}/joined_rooms")
        self.rooms = sorted(joined["joined_rooms"])
        body, _ = self.syncer.ok("GET", f"{C}/sync?timeout=0")
        self.since = body["next_batch"]
        whoami, _ = self.sender.ok("GET", f"{C}/account/whoami")
        self.user_id = whoami["user_id"]

    def send_loop(self) -> None:
        room = room_path(self.rooms[0])
        n = 0
        while not self.stop.is_set():
            n += 1
            path = f"{C}/rooms/{room}/send/m.room.message/fan{time.time_ns()}"
            _, elapsed = self.sender.ok("PUT", path, {"msgtype": "m.text", "body": f"m{n}"})
            self.sends.append((self.phase, elapsed))
            time.sleep(max(0.0, self.args.interval - elapsed / 1000))

    def sync_loop(self) -> None:
        while not self.stop.is_set():
            body, elapsed = self.syncer.ok("GET", f"{C}/sync?timeout=0&since={quote(self.since)}")
            self.syncs.append((self.phase, elapsed))
            self.since = body["next_batch"]
            for room_id, room in body.get("rooms", {}).get("join", {}).items():
                for event in room.get("timeline", {}).get("events", []):
                    if (
                        self.new_name is not None
                        and event.get("type") == "m.room.member"
                        and event.get("state_key") == self.user_id
                        and event.get("content", {}).get("displayname") == self.new_name
                    ):
                        self.renamed_rooms.add(room_id)
            if self.new_name is not None and len(self.renamed_rooms) >= len(self.rooms):
                self.all_renamed.set()
            time.sleep(max(0.0, self.args.interval - elapsed / 1000))


def figures(samples: list[tuple[str, float]], phase: str) -> str:
    values = [ms for p, ms in samples if p == phase]
    if not values:
        return "no requests"
    return (
        f"{len(values):4} requests  p50 {percentile(values, 0.5):7.1f}  "
        f"p95 {percentile(values, 0.95):7.1f}  max {max(values):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--quiet-s", type=float, default=15)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--bind", default="127.0.0.1:38069")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if not User.objects.exists():
        fill(args.rooms)
    elif not User.objects.filter(localpart="alice").exists():
        sys.exit("The database has users but not this benchmark's: use an empty one.")
    backend = connection.vendor
    connection.close()

    handle, log = tempfile.mkstemp(prefix="fanout-bench-", suffix=".log")
    os.close(handle)
    server = Server(args.bind, log, {"TRELLIS_SERVER_NAME": settings.SERVER_NAME})
    try:
        loops = Loops(
            server, login(server, "alice", PASSWORD), login(server, "alice", PASSWORD), args
        )
        threads = [
            threading.Thread(target=loops.send_loop),
            threading.Thread(target=loops.sync_loop),
        ]
        for thread in threads:
            thread.start()
        time.sleep(args.quiet_s)
        loops.new_name = f"Alice {time.time_ns()}"
        loops.phase = "during"
        renamer = server.client(loops.sender.token)
        started = time.perf_counter()
        _, put_ms = renamer.ok(
            "PUT",
            f"{C}/profile/{quote(loops.user_id)}/displayname",
            {"displayname": loops.new_name},
        )
        finished = loops.all_renamed.wait(args.timeout_s)
        fanout_s = time.perf_counter() - started
        loops.stop.set()
        for thread in threads:
            thread.join()
        print(f"{backend}, {len(loops.rooms)} rooms; server log {log}")
        print(f"PUT displayname: {put_ms:.1f} ms")
        shown = len(loops.renamed_rooms)
        print(
            f"fan-out: new member event seen by /sync in {shown} of {len(loops.rooms)} rooms "
            f"after {fanout_s:.1f} s" + ("" if finished else " (timed out)")
        )
        for phase in ("without", "during"):
            print(f"send, {phase:8} {figures(loops.sends, phase)}")
            print(f"sync, {phase:8} {figures(loops.syncs, phase)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
