"""A small thread-safe least-recently-used map for process-wide caches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``size`` entries; reading or writing one makes it the most recent.
    Values are never None (``get`` answers None for a missing key).

    With ``weigh``, the values' total weight is also kept at most ``max_weight`` (the
    least recent go first; a value heavier than that alone is not kept), for caches whose
    values differ in size by orders of magnitude."""

    def __init__(
        self, size: int, *, weigh: Callable[[V], int] | None = None, max_weight: int = 0
    ) -> None:
        self.size = size
        self.items: OrderedDict[K, V] = OrderedDict()
        self.lock = threading.Lock()
        self.weigh = weigh
        self.max_weight = max_weight
        self.weight = 0

    def get(self, key: K) -> V | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self.lock:
            if self.weigh is None:
                self.items[key] = value
                self.items.move_to_end(key)
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
                return
            weight = self.weigh(value)
            old = self.items.pop(key, None)
            if old is not None:
                self.weight -= self.weigh(old)
            if weight > self.max_weight:
                return
            self.items[key] = value
            self.weight += weight
            while len(self.items) > self.size or self.weight > self.max_weight:
                _, evicted = self.items.popitem(last=False)
                self.weight -= self.weigh(evicted)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.weight = 0
