"""Per-process wake-up hub for long-polling /sync requests.

One listener per web process subscribes to the channel layer's ``sync.wakeup`` group
(in-memory by default; Redis with REDIS_URL, so a wake-up published by any process
reaches every process). Waiting requests register what they care about (their user ID
and their rooms); a wake-up names a room or users, and wakes the waiters it concerns.

Wake-ups carry positions, never data: a woken request recomputes its response from
its token. As a safety net the hub also reads the stream positions from the database
once a second while anyone waits, and wakes everyone when they moved: a lost wake-up,
or a write by a process without a shared channel layer (the embedded Celery worker),
only delays a client by that second. Before each such read it runs the registered
poll hooks: housekeeping that may move a stream, like the typing expiry sweep (a typist
whose timeout passed is announced gone within about a second, without a timer each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from streams import positions
from streams.notifier import SYNC_GROUP

logger = logging.getLogger(__name__)

DB_POLL_INTERVAL_S = 1.0

_poll_hooks: list[Callable[[], object]] = []


def register_poll_hook(hook: Callable[[], object]) -> None:
    """Run ``hook`` (synchronous, cheap) before each DB poll while anyone waits."""
    if hook not in _poll_hooks:
        _poll_hooks.append(hook)


def run_poll_hooks() -> None:
    for hook in _poll_hooks:
        try:
            hook()
        except Exception:
            logger.warning("sync hub: poll hook %r failed", hook, exc_info=True)


@dataclass(eq=False)
class Waiter:
    user_id: str
    room_ids: set[str]
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    def __init__(self) -> None:
        self.waiters: set[Waiter] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.last_positions: dict[str, int] | None = None
        # Counts wake-ups received, so a request can tell whether one arrived while it
        # looked for news before registering as a waiter.
        self.wakeups = 0

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is loop and all(not t.done() for t in self.tasks):
            return
        self.loop = loop
        self.tasks = [loop.create_task(self._listen()), loop.create_task(self._poll_db())]

    async def _listen(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        channel = await layer.new_channel()
        await layer.group_add(SYNC_GROUP, channel)
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("sync hub: channel layer receive failed", exc_info=True)
                await asyncio.sleep(1)
                # The group membership may have expired with the connection.
                with contextlib.suppress(Exception):
                    await layer.group_add(SYNC_GROUP, channel)
                continue
            self.dispatch(message)

    async def _poll_db(self) -> None:
        read = sync_to_async(positions.current_positions, thread_sensitive=False)
        housekeeping = sync_to_async(run_poll_hooks, thread_sensitive=False)
        while True:
            await asyncio.sleep(DB_POLL_INTERVAL_S)
            if not self.waiters:
                self.last_positions = None
                continue
            try:
                await housekeeping()
                current = await read()
            except Exception:
                logger.warning("sync hub: reading stream positions failed", exc_info=True)
                continue
            if self.last_positions is not None and current != self.last_positions:
                self.wake_all()
            self.last_positions = current

    def dispatch(self, message: dict[str, Any]) -> None:
        self.wakeups += 1
        room_id = message.get("room_id")
        user_ids = set(message.get("user_ids") or ())
        for waiter in list(self.waiters):
            if (room_id and room_id in waiter.room_ids) or waiter.user_id in user_ids:
                waiter.event.set()

    def wake_all(self) -> None:
        self.wakeups += 1
        for waiter in list(self.waiters):
            waiter.event.set()

    def start(self) -> int:
        """Start listening (if not yet) and return the wake-up count, to pass to
        :meth:`waiting` after looking for news."""
        self._ensure_started()
        return self.wakeups

    @contextlib.asynccontextmanager
    async def waiting(
        self, user_id: str, room_ids: Iterable[str], since_wakeups: int | None = None
    ) -> AsyncIterator[Waiter]:
        """Register a waiter. With ``since_wakeups`` (from :meth:`start`, taken before
        the caller looked for news), a wake-up received since then counts as received
        by this waiter: it may have fallen between the look and the registration."""
        self._ensure_started()
        waiter = Waiter(user_id, set(room_ids))
        if since_wakeups is not None and self.wakeups != since_wakeups:
            waiter.event.set()
        self.waiters.add(waiter)
        try:
            yield waiter
        finally:
            self.waiters.discard(waiter)


hub = Hub()


async def wait(waiter: Waiter, timeout_s: float) -> bool:
    """Wait for the waiter's next wake-up; False on timeout. Clears it for the next wait."""
    try:
        await asyncio.wait_for(waiter.event.wait(), timeout_s)
    except TimeoutError:
        return False
    waiter.event.clear()
    return True
