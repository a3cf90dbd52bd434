"""Work other apps do in the transaction that persists an event, registered from their
AppConfig.ready() (rooms may not import the apps above it).

An *event-persisting* hook is called by ``persist_event`` inside the event's transaction,
under the room lock, in two steps. First, before the event takes its stream position,
with what is known of the event then (``PersistingEvent``): the hook does its slow work
here (push evaluates every member's rules), while writers in other rooms are free to
commit. It may return a *finish* callable, which ``persist_event`` calls with the
event's stream ordering once the event row is written: from the position to the commit
the events stream is locked (streams.positions), so a finish only writes, in as few
statements as it can. What both steps write is committed or rolled back with the event.
Push uses it to write the push rules' verdicts (``push.models.PushAction``), so an event
and its notification counts appear in the same /sync.

A *receipt-moved* hook is called by ``do_send_receipt`` inside its transaction when a
local user's read receipt (m.read or m.read.private) moved, with the user's ID: push
then sends the user's new unread count to their push gateways, after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocol.events import Event as PDUEvent
    from rooms.models import Room


@dataclass(frozen=True)
class PersistingEvent:
    """What a hook learns of one event being persisted."""

    room: Room
    event: PDUEvent
    # The state group before the event (its state is what the event was authorised
    # against); None only for a room's create event.
    state_before: int | None
    # The event's relation (rooms.services.events: ``m.relates_to`` event ID and type).
    relates_to: str | None
    rel_type: str | None


Finish = Callable[[int], None]
EventPersistingHook = Callable[[PersistingEvent], Finish | None]

_event_persisting: list[EventPersistingHook] = []


def register_event_persisting(hook: EventPersistingHook) -> None:
    if hook not in _event_persisting:
        _event_persisting.append(hook)


def event_persisting(persisting: PersistingEvent) -> list[Finish]:
    """Run every hook's first step; their finishes, to call with the stream ordering."""
    finishes = []
    for hook in _event_persisting:
        finish = hook(persisting)
        if finish is not None:
            finishes.append(finish)
    return finishes


ReceiptMovedHook = Callable[[str], None]

_receipt_moved: list[ReceiptMovedHook] = []


def register_receipt_moved(hook: ReceiptMovedHook) -> None:
    if hook not in _receipt_moved:
        _receipt_moved.append(hook)


def receipt_moved(user_id: str) -> None:
    for hook in _receipt_moved:
        hook(user_id)
