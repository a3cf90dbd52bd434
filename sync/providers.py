"""Sections of /sync that other apps own, registered from their AppConfig.ready().

- An *ephemeral* provider returns, for the joined rooms in the response, the room's
  ephemeral events (typing, receipts) between the two tokens.
- A *top-level* provider returns top-level sections (to_device, presence,
  device_lists, ...) and whether any of them carries news (an empty long-poll keeps
  waiting until one does).
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
    ["SyncRequest", "SyncToken | None", "SyncToken"], tuple[dict[str, Any], bool]
]

_ephemeral: list[EphemeralProvider] = []
_top_level: list[TopLevelProvider] = []


def register_ephemeral(provider: EphemeralProvider) -> None:
    if provider not in _ephemeral:
        _ephemeral.append(provider)


def register_top_level(provider: TopLevelProvider) -> None:
    if provider not in _top_level:
        _top_level.append(provider)


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
) -> tuple[dict[str, Any], bool]:
    sections: dict[str, Any] = {}
    updates = False
    for provider in _top_level:
        provided, has_news = provider(request, since, now)
        sections.update(provided)
        updates = updates or has_news
    return sections, updates
