"""The process's own caches of database facts, and one way to empty them all.

Several modules keep what they read in process memory (state groups at stream positions,
the newest events, compiled push rules, ...), each sure that its entries stay true while
the database only moves forwards. A test breaks that promise: its transaction is rolled
back and the same positions and IDs are handed out again by the next test. So each such
module registers the function that empties its cache here, when it is imported, and the
test suite calls :func:`reset_process_caches` before every test (tests/conftest.py).

A module never imported has no cache to empty, so registering at import is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[[], object])

_clear_functions: list[Callable[[], object]] = []


def register(clear: F) -> F:
    """Register ``clear`` (no arguments) to empty a process cache; usable as a decorator.
    Registering the same function twice keeps one."""
    if clear not in _clear_functions:
        _clear_functions.append(clear)
    return clear


def reset_process_caches() -> None:
    """Empty every registered process cache."""
    for clear in _clear_functions:
        clear()
