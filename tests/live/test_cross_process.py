"""Two web processes on one PostgreSQL database and one Redis: a /sync long-poll
waiting on one process is woken by a message sent through the other, over the Redis
channel layer.

Runs on CI's PostgreSQL + Redis pass only (DATABASE_URL and REDIS_URL set): on the
embedded default every process has its own in-memory channel layer and SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nio import (
    JoinResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from tests.live.conftest import LiveServer, backend_environ, start_homeserver, stop_homeserver
from tests.live.test_nio_accounts import registered, run_async

pytestmark = pytest.mark.live

LONG_POLL_MS = 30_000
WOKEN_WITHIN_S = 20


@pytest.fixture(scope="module")
def two_web_processes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, LiveServer]]:
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        pytest.skip("needs DATABASE_URL and REDIS_URL (CI's PostgreSQL + Redis pass)")
    data_dir: Path = tmp_path_factory.mktemp("two-processes")
    with backend_environ(data_dir, slot=1) as backend:
        first = start_homeserver(data_dir, backend)
        try:
            second = start_homeserver(data_dir, backend, web_only_for=first)
            try:
                yield first, second
            finally:
                stop_homeserver(second)
        finally:
            stop_homeserver(first)


@run_async
async def test_a_long_poll_on_one_process_wakes_for_a_send_on_the_other(
    two_web_processes: tuple[LiveServer, LiveServer],
) -> None:
    server_a, server_b = two_web_processes
    async with registered(server_a) as alice, registered(server_b) as bob:
        created = await alice.room_create(name="Across")
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        invited = await alice.room_invite(room_id, bob.user_id)
        assert isinstance(invited, RoomInviteResponse), invited
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined

        initial = await alice.sync(timeout=0, full_state=True)
        assert isinstance(initial, SyncResponse), initial
        started = time.monotonic()
        poll = asyncio.create_task(alice.sync(timeout=LONG_POLL_MS, since=initial.next_batch))
        await asyncio.sleep(0.5)
        assert not poll.done()
        sent = await bob.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "from B"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        response = await poll
        assert isinstance(response, SyncResponse), response
        assert time.monotonic() - started < WOKEN_WITHIN_S
        events = response.rooms.join[room_id].timeline.events
        assert [e.event_id for e in events if isinstance(e, RoomMessageText)] == [sent.event_id]
