"""config/ratelimit.py under concurrency: requests racing on one bucket cannot all read
the same count and all get through (the bucket is locked while it is updated)."""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache

from config import ratelimit

BURST = 5
THREADS = 16


@pytest.fixture
def ratelimited(settings: Any) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {"login_failed": (0.0001, BURST)}


def take_at_once(action: str, key: str) -> list[int]:
    barrier = threading.Barrier(THREADS)
    waits: list[int] = []

    def worker() -> None:
        barrier.wait(timeout=30)
        waits.append(ratelimit.wait_ms(action, key))

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return waits


class SlowCache:
    """The cache with a network's delay on reads, so that racing requests overlap."""

    def __getattr__(self, name: str) -> Any:
        return getattr(cache, name)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        value = cache.get(*args, **kwargs)
        time.sleep(0.005)
        return value


@pytest.mark.usefixtures("ratelimited")
def test_racing_requests_take_no_more_than_the_burst() -> None:
    with mock.patch.object(ratelimit, "cache", SlowCache()):
        waits = take_at_once("login_failed", "racy")

    assert len(waits) == THREADS
    assert waits.count(0) == BURST
    assert all(wait > 0 for wait in waits if wait)


@pytest.mark.usefixtures("ratelimited")
def test_a_refunded_token_can_be_taken_again() -> None:
    for _ in range(BURST):
        assert ratelimit.wait_ms("login_failed", "someone") == 0
    assert ratelimit.wait_ms("login_failed", "someone") > 0

    ratelimit.refund("login_failed", "someone")

    assert ratelimit.wait_ms("login_failed", "someone", update=False) == 0
    assert ratelimit.wait_ms("login_failed", "someone") == 0
    assert ratelimit.wait_ms("login_failed", "someone") > 0


@pytest.mark.usefixtures("ratelimited")
def test_a_refund_never_fills_the_bucket_beyond_its_burst() -> None:
    ratelimit.refund("login_failed", "fresh")
    ratelimit.refund("login_failed", "fresh")

    waits = [ratelimit.wait_ms("login_failed", "fresh") for _ in range(BURST + 1)]

    assert waits[:BURST] == [0] * BURST
    assert waits[BURST] > 0
