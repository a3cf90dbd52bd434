"""Token-bucket rate limiting on the shared cache (Redis in production).

``check_ratelimit("login", key)`` takes one token from the bucket of that action and
key (a client IP or a user), or raises 429 M_LIMIT_EXCEEDED with ``retry_after_ms``;
``wait_ms`` does the same but answers how long to wait (0: go ahead) for callers that
are not Matrix endpoints, such as the admin portal's login page.
Rates and bursts are in ``settings.RATELIMITS``; TRELLIS_RATELIMIT=off turns it off.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from protocol.errors import limit_exceeded


def wait_ms(action: str, key: str, *, update: bool = True) -> int:
    """Milliseconds until the bucket has a token again, or 0 if it has one now; in that
    case take it unless ``update`` is False (to check before an attempt whose outcome
    decides whether it counts)."""
    if not settings.RATELIMIT_ENABLED:
        return 0
    rate, burst = settings.RATELIMITS[action]
    cache_key = f"ratelimit:{action}:{key}"
    now = time.time()
    tokens, updated = cache.get(cache_key, (float(burst), now))
    tokens = min(float(burst), tokens + (now - updated) * rate)
    if tokens < 1.0:
        return int((1.0 - tokens) / rate * 1000) + 1
    if update:
        cache.set(cache_key, (tokens - 1.0, now), timeout=int(burst / rate) + 60)
    return 0


def check_ratelimit(action: str, key: str, *, update: bool = True) -> None:
    """Raise 429 if the bucket is empty; take a token from it unless ``update`` is False."""
    retry_after_ms = wait_ms(action, key, update=update)
    if retry_after_ms:
        raise limit_exceeded(retry_after_ms)
