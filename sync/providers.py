"""Sections of /sync that other apps own, registered from their AppConfig.ready().

- An *ephemeral* provider returns, for the joined rooms in the response, the room's
  ephemeral events (typing, receipts) between the two tokens.
- An *activity* hook is told of each /sync request before it is answered.
- A *read-along* gives a query (two columns, a text and an integer) whose rows every
  response needs, to be run in the same statement as the stream positions: one round
  trip, where a query of its own would cost an empty /sync a third of its time. Its rows
  reach the top-level providers as ``now.readings[name]``.
- A *top-level* provider returns top-level sections (to_device, presence,
  device_lists, ...) and whether any of them carries news (an empty long-poll keeps
  waiting until one does). It may add a third item, ``{stream: position}``, when its
  news did not all fit in one response: ``next_batch`` then carries that position for
  the stream instead of the current one, so the next sync goes on from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.builder import SyncRequest
    from sync.tokens import SyncToken

EphemeralProvider = Callable[
    ["SyncRequest", "SyncToken | None", "SyncToken", Sequence[str]],
    dict[str, list[dict[str, Any]]],
]
TopLevelProvider = Callable[
    ["SyncRequest", "SyncToken | None", "SyncToken"],
    tuple[dict[str, Any], bool] | tuple[dict[str, Any], bool, dict[str, int]],
]

ActivityHook = Callable[["SyncRequest"], None]
ReadAlong = Callable[["SyncRequest"], tuple[str, Sequence[Any]]]

_ephemeral: list[EphemeralProvider] = []
_top_level: list[TopLevelProvider] = []
_activity: list[ActivityHook] = []
_read_along: dict[str, ReadAlong] = {}


def register_ephemeral(provider: EphemeralProvider) -> None:
    if provider not in _ephemeral:
        _ephemeral.append(provider)


def register_top_level(provider: TopLevelProvider) -> None:
    if provider not in _top_level:
        _top_level.append(provider)


def register_activity(hook: ActivityHook) -> None:
    """``hook(request)`` runs once per /sync request, before its token is read, so what
    it writes (presence: a /sync is activity) is in that response."""
    if hook not in _activity:
        _activity.append(hook)


def register_read_along(name: str, query: ReadAlong) -> None:
    _read_along[name] = query


def read_alongs(request: SyncRequest) -> list[tuple[str, tuple[str, Sequence[Any]]]]:
    """Each read-along's name and its query (SQL and parameters) for ``request``."""
    return [(name, query(request)) for name, query in _read_along.items()]


def record_activity(request: SyncRequest) -> None:
    for hook in _activity:
        hook(request)


def ephemeral(
    request: SyncRequest, since: SyncToken | None, now: SyncToken, room_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    merged: dict[str, list[dict[str, Any]]] = {}
    if not room_ids:
        return merged
    for provider in _ephemeral:
        for room_id, events in provider(request, since, now, room_ids).items():
            merged.setdefault(room_id, []).extend(events)
    return merged


def top_level(
    request: SyncRequest, since: SyncToken | None, now: SyncToken
) -> tuple[dict[str, Any], bool, dict[str, int]]:
    """The merged sections, whether any has news, and the streams held back."""
    sections: dict[str, Any] = {}
    updates = False
    held_back: dict[str, int] = {}
    for provider in _top_level:
        provided, has_news, *rest = provider(request, since, now)
        sections.update(provided)
        updates = updates or has_news
        for stream, position in (rest[0] if rest else {}).items():
            held_back[stream] = min(position, held_back.get(stream, position))
    return sections, updates, held_back
