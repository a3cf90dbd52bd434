"""Async views that stop waiting when their client hangs up.

config/asgi.py runs an async view in the request's own task and leaves listening for
the client's disconnect to the view: most requests are answered at once, and a listener
for each (a task started, then cancelled, and a wait on both) cost an empty /sync more
than its own work. A view that waits (a /sync long-poll) does so inside
:func:`cancelled_on_hangup`; a client that hangs up meanwhile cancels the request's task,
as Django's handler cancels a view, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from django.http import HttpRequest

_LISTEN = "_trellis_listen_for_hangup"
_HUNG_UP = "_trellis_hung_up"


def listen_with(request: HttpRequest, listen: Callable[[], Awaitable[Any]]) -> None:
    """``listen()`` returns or raises once the client has gone (config/asgi.py)."""
    setattr(request, _LISTEN, listen)


def hung_up(request: HttpRequest) -> bool:
    """Was the request's task cancelled because its client hung up?"""
    return getattr(request, _HUNG_UP, False)


@contextlib.asynccontextmanager
async def cancelled_on_hangup(request: HttpRequest) -> AsyncIterator[None]:
    """Within the block, a client that hangs up cancels the current task. Requests that
    did not come through config/asgi.py (the test client's) are not watched."""
    listen = getattr(request, _LISTEN, None)
    if listen is None:
        yield
        return
    task = asyncio.current_task()
    assert task is not None

    async def watch() -> None:
        # Any message after the body, or a failure to receive, means the client is gone.
        with contextlib.suppress(Exception):
            await listen()
        setattr(request, _HUNG_UP, True)
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        watcher.cancel()
