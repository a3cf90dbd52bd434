"""How long a user directory search takes (rooms.selectors_user_directory), on a fresh
database filled with rows rather than through the API (issue 19).

    TRELLIS_DATA_DIR=$(mktemp -d) python bench/user_directory.py [--users 5000]
        [--rooms 1000] [--rooms-per-user 8] [--public-share 0.1] [--repeat 20]

Makes ``users`` directory entries (display names drawn from a small list of first and
last names, so that short prefixes match many users), ``rooms`` rooms of which
``public-share`` are public, and joins each user to ``rooms-per-user`` random rooms.
Then times searches for a few terms, from a user in several rooms, and prints the
median and worst time per term with the number of results. Runs on whatever database
TRELLIS_DATA_DIR / DATABASE_URL point at (migrated first): use an empty one.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

from rooms.models import (  # noqa: E402
    Membership,
    Room,
    UserDirectoryEntry,
    UserDirectoryPublicRoom,
)
from rooms.selectors_user_directory import search_users  # noqa: E402
from rooms.services.user_directory import entry_row  # noqa: E402

FIRST = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy"]
LAST = ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts"]
TERMS = ["al", "alice", "alice smi", "smith", "u12", "zzz"]


def fill(users: int, rooms: int, per_user: int, public_share: float) -> list[str]:
    rng = random.Random(19)
    server = settings.SERVER_NAME
    user_ids = [f"@u{n}:{server}" for n in range(users)]
    with transaction.atomic():
        UserDirectoryEntry.objects.bulk_create(
            UserDirectoryEntry(
                **dict(
                    zip(
                        [
                            "user_id",
                            "display_name",
                            "avatar_url",
                            "search_words",
                            "display_name_key",
                            "localpart_key",
                        ],
                        entry_row(user_id, f"{rng.choice(FIRST)} {rng.choice(LAST)}", None),
                        strict=True,
                    )
                )
            )
            for user_id in user_ids
        )
        made = Room.objects.bulk_create(
            Room(room_id=f"!bench{n}:{server}", room_version="10", creator=user_ids[0])
            for n in range(rooms)
        )
        UserDirectoryPublicRoom.objects.bulk_create(
            UserDirectoryPublicRoom(room=room) for room in made if rng.random() < public_share
        )
        position = 0
        memberships = []
        for user_id in user_ids:
            for room in rng.sample(made, per_user):
                position += 1
                memberships.append(
                    Membership(
                        room=room,
                        user_id=user_id,
                        membership="join",
                        event_id=f"$m{position}",
                        stream_ordering=position,
                    )
                )
        Membership.objects.bulk_create(memberships, batch_size=5000)
    return user_ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--rooms-per-user", type=int, default=8)
    parser.add_argument("--public-share", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if UserDirectoryEntry.objects.exists():
        sys.exit("The database already has a user directory: use an empty one.")
    user_ids = fill(args.users, args.rooms, args.rooms_per_user, args.public_share)
    searcher = user_ids[1]
    print(
        f"{args.users} users, {args.rooms} rooms ({args.public_share:.0%} public), "
        f"{args.users * args.rooms_per_user} memberships, "
        f"{settings.DATABASES['default']['ENGINE']}"
    )
    for term in TERMS:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            found, limited = search_users(searcher, term, 10)
            times.append((time.perf_counter() - start) * 1000)
        matching = UserDirectoryEntry.objects.filter(
            search_words__contains=" " + term.split()[0]
        ).count()
        print(
            f"{term!r:14} median {statistics.median(times):6.1f} ms  worst {max(times):6.1f} ms"
            f"  {len(found)} results (limited: {limited}), {matching} entries match its first word"
        )


if __name__ == "__main__":
    main()
