"""/sync tokens: one position per stream, opaque to clients.

``s<events>_<account_data>_<receipts>_<typing>_<to_device>_<presence>_<device_lists>``.
The leading ``s<events>`` part is also a /messages pagination token (rooms.history).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from protocol.errors import MatrixError
from streams import positions
from sync import providers

if TYPE_CHECKING:
    from sync.builder import SyncRequest


@dataclass(frozen=True)
class SyncToken:
    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    to_device: int = 0
    presence: int = 0
    device_lists: int = 0
    # What a /sync read together with these positions (sync.providers' read-alongs):
    # rows by name. Not part of the token: never compared, never sent.
    readings: Mapping[str, list[tuple[Any, Any]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __str__(self) -> str:
        return "s" + "_".join([str(getattr(self, name)) for name in _NAMES])

    @classmethod
    def parse(cls, token: str) -> SyncToken:
        if not token.startswith("s"):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        parts = token[1:].split("_")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token") from None
        if not 1 <= len(values) <= len(_NAMES) or any(v < 0 for v in values):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        return cls(*values)

    def is_ahead_of(self, other: SyncToken) -> bool:
        """Is any of this token's positions past ``other``'s?"""
        return any(getattr(self, name) > getattr(other, name) for name in _NAMES)

    @classmethod
    def current_for(cls, request: SyncRequest) -> SyncToken:
        """The positions every stream has reached, with the request's read-alongs, in
        one query."""
        queries = providers.read_alongs(request)
        now, rows = positions.current_positions_with([query for _, query in queries])
        readings = {name: found for (name, _), found in zip(queries, rows, strict=True)}
        return cls(*[now.get(name, 0) for name in _NAMES], readings=readings)


# The streams in token order.
_NAMES = tuple(f.name for f in fields(SyncToken) if f.name != "readings")
