"""Server-side search over a big room (issue 19): POST /_matrix/client/v3/search,
``room_events``, timed over HTTP against a real server process.

    TRELLIS_DATA_DIR=$(mktemp -d) .venv/bin/python bench/search.py [--messages 100000]
        [--repeat 30] [--bind 127.0.0.1:38069]
    DATABASE_URL=postgres://root@127.0.0.1:5432/NAME .venv/bin/python bench/search.py ...

On an empty database it makes two users (alice, bob) and a public room, and sends
``messages`` m.room.message events into it through rooms.services.events.do_send_event,
in this process (the send path a request takes: the search index is filled by
persist_event as for any send), 500 to a transaction; alice is also in three small
rooms. The text is varied: words drawn from a Zipf-like vocabulary of 5,000 made-up
words, with a few English words at known shares (``meeting`` in about 5% of messages,
``deploy`` 1%, ``xylophone`` in 20 messages). A database that already holds the room
(a second run) is reused as it is.

Then it starts the server (``python -m config.launcher``, as ``make run`` does, rate
limits off) on ``--bind`` and, as alice, times each query kind ``repeat`` times after
3 warm-up requests, one request at a time: ordered by rank and by recent, common,
rare, two-word and absent terms, with and without a filter on the big room. Prints the
nearest-rank p50/p90/p95 per kind, the server's CPU time per request (all its processes,
from /proc: steadier than the wall time on a loaded machine), the ``count`` the server
gave and the load average after the kind's requests (the machine's, one minute), and
stops the server.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services.registration import do_create_user  # noqa: E402
from bench.live_server import C, Server, login, percentile  # noqa: E402
from rooms.models import EventSearch, Room  # noqa: E402
from rooms.services.creation import RoomSpec, do_create_room  # noqa: E402
from rooms.services.events import SendContext, do_send_event  # noqa: E402
from rooms.services.membership import do_update_membership  # noqa: E402

PASSWORD = "bench-search-pw-19"
ROOM_NAME = "search bench"
# Word, share of messages that contain it.
PLANTED = [("meeting", 0.05), ("deploy", 0.01)]
RARE = "xylophone"
RARE_COUNT = 20
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "dor", "fen"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def message_text(rng: random.Random, words: list[str], weights: list[float]) -> str:
    chosen = rng.choices(words, weights, k=rng.randint(4, 16))
    for word, share in PLANTED:
        if rng.random() < share:
            chosen.insert(rng.randrange(len(chosen) + 1), word)
    return " ".join(chosen).capitalize() + rng.choice([".", "!", "?", ""])


def fill(messages: int) -> str:
    rng = random.Random(19)
    alice = do_create_user("alice", PASSWORD)
    bob = do_create_user("bob", PASSWORD)
    room = do_create_room(
        RoomSpec(creator=alice.user_id, preset="public_chat", visibility="public", name=ROOM_NAME)
    )
    do_update_membership(room.room_id, SendContext(sender=bob.user_id), bob.user_id, "join")
    for n in range(3):
        small = do_create_room(RoomSpec(creator=alice.user_id, name=f"small {n}"))
        for i in range(50):
            do_send_event(
                small.room_id,
                SendContext(sender=alice.user_id),
                "m.room.message",
                {"msgtype": "m.text", "body": f"small room {n} meeting note {i}"},
            )
    words = vocabulary(rng, 5000)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    rare_at = set(rng.sample(range(messages), RARE_COUNT))
    senders = [SendContext(sender=alice.user_id), SendContext(sender=bob.user_id)]
    start = time.perf_counter()
    for first in range(0, messages, 500):
        with transaction.atomic():
            for n in range(first, min(first + 500, messages)):
                body = message_text(rng, words, weights)
                if n in rare_at:
                    body += f" {RARE}"
                do_send_event(
                    room.room_id,
                    senders[n % 2],
                    "m.room.message",
                    {"msgtype": "m.text", "body": body},
                )
        done = min(first + 500, messages)
        if done % 10000 == 0:
            rate = done / (time.perf_counter() - start)
            print(f"  {done} messages sent ({rate:.0f}/s)", file=sys.stderr, flush=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return room.room_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--bind", default="127.0.0.1:38069")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if User.objects.exists():
        # The benchmark's big room: the one with the most events.
        room_id = (
            Room.objects.annotate(n_events=Count("events"))
            .order_by("-n_events")
            .values_list("room_id", flat=True)
            .first()
        )
        if room_id is None or not User.objects.filter(localpart="alice").exists():
            sys.exit("The database has users but not this benchmark's room: use an empty one.")
        print(f"reusing {room_id}", file=sys.stderr)
    else:
        start = time.perf_counter()
        room_id = fill(args.messages)
        print(f"filled in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    indexed = EventSearch.objects.count()
    backend = connection.vendor
    connection.close()

    handle, log = tempfile.mkstemp(prefix="search-bench-", suffix=".log")
    os.close(handle)
    server = Server(args.bind, log, {"TRELLIS_SERVER_NAME": settings.SERVER_NAME})
    try:
        token = login(server, "alice", PASSWORD)
        client = server.client(token)
        print(f"{backend}, {indexed} rows in the search index; server log {log}")
        load = os.getloadavg()[0]
        print(f"load average at the start: {load:.2f}")
        header = f"{'query':44} {'p50 ms':>8} {'p90 ms':>8} {'p95 ms':>8} {'cpu ms':>7}"
        print(f"{header} {'count':>7} {'results':>7} {'load':>5}")
        terms = [("common", "meeting"), ("less common", "deploy"), ("rare", RARE)]
        terms += [("two words", "meeting deploy"), ("prefix", "meet"), ("absent", "qwzx")]
        for order in ("rank", "recent"):
            for label, term in terms:
                for room_filter in (None, {"rooms": [room_id]}):
                    criteria: dict = {"search_term": term, "order_by": order}
                    if room_filter:
                        criteria["filter"] = room_filter
                    body = {"search_categories": {"room_events": criteria}}
                    times = []
                    answer = None
                    for _ in range(3):
                        answer, _elapsed = client.ok("POST", f"{C}/search", body)
                    cpu_before = server.cpu_seconds()
                    for _ in range(args.repeat):
                        answer, elapsed = client.ok("POST", f"{C}/search", body)
                        times.append(elapsed)
                    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / args.repeat
                    assert answer is not None
                    found = answer["search_categories"]["room_events"]
                    name = f"{order}, {label} {term!r}" + (", room filter" if room_filter else "")
                    p50, p90, p95 = (percentile(times, share) for share in (0.5, 0.9, 0.95))
                    print(
                        f"{name:44} {p50:8.1f} {p90:8.1f} {p95:8.1f} {cpu_ms:7.1f}"
                        f" {found.get('count', 0):7}"
                        f" {len(found['results']):7} {os.getloadavg()[0]:5.2f}",
                        flush=True,
                    )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
