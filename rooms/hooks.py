"""Work other apps do in the transaction that persists an event, registered from their
AppConfig.ready() (rooms may not import the apps above it).

An *event-persisted* hook is called by ``persist_event`` once the event is stored at its
stream position, inside the same transaction and under the room lock: what it writes is
committed (or rolled back) with the event. Push uses it to write the push rules'
verdicts (``push.models.PushAction``), so an event and its notification counts appear in
the same /sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocol.events import Event as PDUEvent
    from rooms.models import Room


@dataclass(frozen=True)
class PersistedEvent:
    """What a hook learns of one persisted event."""

    room: Room
    event: PDUEvent
    stream_ordering: int
    # The state group before the event (its state is what the event was authorised
    # against); None only for a room's create event.
    state_before: int | None
    # The event's relation (rooms.services.events: ``m.relates_to`` event ID and type).
    relates_to: str | None
    rel_type: str | None


EventPersistedHook = Callable[[PersistedEvent], None]

_event_persisted: list[EventPersistedHook] = []


def register_event_persisted(hook: EventPersistedHook) -> None:
    if hook not in _event_persisted:
        _event_persisted.append(hook)


def event_persisted(persisted: PersistedEvent) -> None:
    for hook in _event_persisted:
        hook(persisted)
