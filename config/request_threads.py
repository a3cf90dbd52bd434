"""The threads that run Matrix requests' synchronous work.

One fixed pool per web process (``TRELLIS_WEB_THREADS``). config/asgi.py answers a
request to a synchronous view in one hop to it; the async /sync view runs its database
work there too. Django's own ASGI path instead starts a thread per request and hops to
it and back for each step, which cost more than a simple endpoint's work.

Under the test runner work stays on the caller's thread, as Django's thread-sensitive
mode does: tests hold their data in a transaction that other threads cannot see.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=settings.TRELLIS_WEB_THREADS, thread_name_prefix="matrix-request"
    )


def in_request_thread(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``function`` as a coroutine function that runs it in a thread of the pool."""
    if settings.TESTING:
        return sync_to_async(function)
    return sync_to_async(function, thread_sensitive=False, executor=pool())
