"""/sync tokens: one position per stream, opaque to clients.

``s<events>_<account_data>_<receipts>_<typing>_<to_device>_<presence>_<device_lists>``.
The leading ``s<events>`` part is also a /messages pagination token (rooms.history).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from protocol.errors import MatrixError
from streams import positions


@dataclass(frozen=True)
class SyncToken:
    events: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    to_device: int = 0
    presence: int = 0
    device_lists: int = 0

    def __str__(self) -> str:
        values = [getattr(self, f.name) for f in fields(self)]
        return "s" + "_".join(str(v) for v in values)

    @classmethod
    def parse(cls, token: str) -> SyncToken:
        if not token.startswith("s"):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        parts = token[1:].split("_")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token") from None
        names = [f.name for f in fields(cls)]
        if not 1 <= len(values) <= len(names) or any(v < 0 for v in values):
            raise MatrixError("M_INVALID_PARAM", "Invalid sync token")
        return cls(**dict(zip(names, values, strict=False)))

    def is_ahead_of(self, other: SyncToken) -> bool:
        """Is any of this token's positions past ``other``'s?"""
        return any(getattr(self, f.name) > getattr(other, f.name) for f in fields(self))

    @classmethod
    def current(cls) -> SyncToken:
        """The positions every stream has reached, read in one query."""
        now = positions.current_positions()
        return cls(**{f.name: now.get(f.name, 0) for f in fields(cls)})
