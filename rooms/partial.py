"""Waiting for a room joined with partial state (rooms.services.partial_state) to have
its whole state: what local events and member lists do meanwhile."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from django.db import connection
from django.db.models import QuerySet

from protocol.errors import MatrixError
from rooms.models import PartialStateRoom, Room

# How long a local event or a member list waits for the state before giving up.
WAIT_S = 60.0
POLL_S = 0.05

P = ParamSpec("P")
R = TypeVar("R")


class PartialState(MatrixError):
    """The room was joined with partial state moments ago and its members are still
    being fetched (rooms.services.partial_state): a local event must wait for them."""

    def __init__(self, room_id: str) -> None:
        super().__init__(
            "M_UNKNOWN",
            "This server joined the room moments ago and is still fetching its members "
            "from the other servers in it; try again shortly",
            status=503,
        )
        self.room_id = room_id


def is_partial(room_id: str) -> bool:
    """The room's state is partial now."""
    return Room.objects.filter(room_id=room_id, partial_state=True).exists()


def servers_of_partial_rooms(room_pks: Iterable[int] | QuerySet[Any]) -> set[str]:
    """The servers the send_join answers of those of ``room_pks`` (a list or a subquery)
    still partial named as in the room (``servers_in_room``, checked when stored: this
    server is not among them). Until the whole state is fetched this server knows only
    some of the rooms' members, so what goes to "every server in the room" (typing,
    receipts, presence, device list updates) goes to these too, as Synapse sends it."""
    servers: set[str] = set()
    for names in PartialStateRoom.objects.filter(room_id__in=room_pks).values_list(
        "servers", flat=True
    ):
        servers.update(names)
    return servers


def wait_for_full_state(room_id: str, timeout_s: float = WAIT_S) -> None:
    """Return once the room's state is whole (at once, for nearly every room);
    PartialState if it still is not after ``timeout_s``. Never inside a transaction,
    which would keep the fetch from writing (on SQLite, the one writer)."""
    deadline = time.monotonic() + timeout_s
    while is_partial(room_id):
        if connection.in_atomic_block or time.monotonic() >= deadline:
            raise PartialState(room_id)
        time.sleep(POLL_S)


def retrying(service: Callable[P, R]) -> Callable[P, R]:
    """A service that makes a local event in a room: when the room turns out to have
    partial state (``PartialState``, raised under the room lock before anything is
    written: rooms.services.events.prepare_in_locked_room), wait for the whole state
    and run the service again."""

    @functools.wraps(service)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                return service(*args, **kwargs)
            except PartialState as partial:
                if connection.in_atomic_block:
                    raise
                wait_for_full_state(partial.room_id, max(0.0, deadline - time.monotonic()))

    return run
