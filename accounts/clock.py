"""Milliseconds since the epoch, the unit of every Matrix timestamp."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
