"""config.lru.LRU: bounded by count, and optionally by the total weight of its values."""

from __future__ import annotations

from config.lru import LRU


def test_the_least_recent_entry_goes_first() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_a_weighed_cache_keeps_its_total_weight_bounded() -> None:
    cache: LRU[int, list[int]] = LRU(100, weigh=len, max_weight=10)
    for key in range(5):
        cache.put(key, [0] * 4)

    # Two lists of four fit in ten; the most recent two are kept.
    assert cache.weight == 8
    assert [key for key in range(5) if cache.get(key) is not None] == [3, 4]


def test_replacing_a_value_replaces_its_weight() -> None:
    cache: LRU[str, list[int]] = LRU(100, weigh=len, max_weight=10)
    cache.put("a", [0] * 6)
    cache.put("a", [0] * 2)
    cache.put("b", [0] * 8)

    assert cache.weight == 10
    assert cache.get("a") == [0, 0]


def test_a_value_heavier_than_the_bound_is_not_kept() -> None:
    cache: LRU[str, list[int]] = LRU(100, weigh=len, max_weight=10)
    cache.put("small", [0])
    cache.put("huge", [0] * 11)

    assert cache.get("huge") is None
    assert cache.get("small") == [0]
    cache.clear()
    assert cache.weight == 0
