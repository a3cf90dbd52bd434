"""python manage.py check_room_graph [ROOM_ID ...]: report what is wrong in rooms' graphs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rooms.graph_check import check_room
from rooms.models import Room


class Command(BaseCommand):
    help = (
        "Check rooms' event graphs (auth events stored, forward extremities, current state "
        "against the resolution of the extremities' states, membership rows); every room "
        "when no room ID is given. Exits with status 1 if any problem is found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room_ids", nargs="*", metavar="ROOM_ID")

    def handle(self, *args: Any, **options: Any) -> None:
        room_ids: list[str] = options["room_ids"]
        rooms = Room.objects.order_by("pk")
        if room_ids:
            rooms = rooms.filter(room_id__in=room_ids)
        found = 0
        for room_id in sorted(set(room_ids) - set(rooms.values_list("room_id", flat=True))):
            self.stdout.write(f"{room_id}: unknown room")
            found += 1
        checked = 0
        for room in rooms.iterator():
            checked += 1
            problems = check_room(room)
            found += len(problems)
            if not problems:
                self.stdout.write(f"{room.room_id}: ok")
                continue
            self.stdout.write(f"{room.room_id}: {len(problems)} problem(s)")
            for problem in problems:
                self.stdout.write(f"  {problem}")
        self.stdout.write(f"{checked} room(s) checked, {found} problem(s)")
        if found:
            raise SystemExit(1)
