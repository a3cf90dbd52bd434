"""Token-bucket rate limiting on the shared cache (Redis in production).

``check_ratelimit("login", key)`` takes one token from the bucket of that action and
key (a client IP or a user), or raises 429 M_LIMIT_EXCEEDED with ``retry_after_ms``;
``wait_ms`` does the same but answers how long to wait (0: go ahead) for callers that
are not Matrix endpoints, such as the admin portal's login page. ``refund`` gives back
a token taken ahead of an attempt that turned out not to count (a correct password).
Rates and bursts are in ``settings.RATELIMITS``; TRELLIS_RATELIMIT=off turns it off.

Taking and refunding hold a short lock on the bucket (an atomic ``cache.add``), so that
requests racing on one bucket cannot all read the same count and all get through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

from protocol.errors import limit_exceeded

# A bucket's lock expires on its own after this long, should its holder die; waiting
# longer than LOCK_WAIT_S for it counts as limited (only a flood of requests for one
# bucket holds it that long).
LOCK_EXPIRY_S = 2
LOCK_WAIT_S = 1.0


@contextmanager
def _locked(cache_key: str) -> Iterator[bool]:
    lock_key = f"{cache_key}:lock"
    deadline = time.monotonic() + LOCK_WAIT_S
    while not cache.add(lock_key, 1, timeout=LOCK_EXPIRY_S):
        if time.monotonic() > deadline:
            yield False
            return
        time.sleep(0.002)
    try:
        yield True
    finally:
        cache.delete(lock_key)


def _tokens(cache_key: str, rate: float, burst: int, now: float) -> float:
    tokens, updated = cache.get(cache_key, (float(burst), now))
    return float(min(float(burst), tokens + (now - updated) * rate))


def wait_ms(
    action: str, key: str, *, update: bool = True, override: tuple[float, int] | None = None
) -> int:
    """Milliseconds until the bucket has a token again, or 0 if it has one now; in that
    case take it unless ``update`` is False (to check before an attempt whose outcome
    decides whether it counts).

    ``override``: (rate, burst) for this key in place of the action's setting, e.g. an
    operator's per-user message rate; a rate of 0 means not limited at all.
    """
    if not settings.RATELIMIT_ENABLED:
        return 0
    rate, burst = settings.RATELIMITS[action] if override is None else override
    if rate <= 0:
        return 0
    burst = max(burst, 1)
    cache_key = f"ratelimit:{action}:{key}"
    if not update:
        tokens = _tokens(cache_key, rate, burst, time.time())
        return 0 if tokens >= 1.0 else int((1.0 - tokens) / rate * 1000) + 1
    with _locked(cache_key) as locked:
        if not locked:
            return int(LOCK_WAIT_S * 1000)
        now = time.time()
        tokens = _tokens(cache_key, rate, burst, now)
        if tokens < 1.0:
            return int((1.0 - tokens) / rate * 1000) + 1
        cache.set(cache_key, (tokens - 1.0, now), timeout=int(burst / rate) + 60)
    return 0


def refund(action: str, key: str) -> None:
    """Give back the token ``wait_ms`` took for an attempt that does not count."""
    if not settings.RATELIMIT_ENABLED:
        return
    rate, burst = settings.RATELIMITS[action]
    cache_key = f"ratelimit:{action}:{key}"
    with _locked(cache_key) as locked:
        if locked:
            now = time.time()
            tokens = min(float(burst), _tokens(cache_key, rate, burst, now) + 1.0)
            cache.set(cache_key, (tokens, now), timeout=int(burst / rate) + 60)


def check_ratelimit(
    action: str, key: str, *, update: bool = True, override: tuple[float, int] | None = None
) -> None:
    """Raise 429 if the bucket is empty; take a token from it unless ``update`` is False."""
    retry_after_ms = wait_ms(action, key, update=update, override=override)
    if retry_after_ms:
        raise limit_exceeded(retry_after_ms)
