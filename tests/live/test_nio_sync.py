"""/sync long-polls, as matrix-nio sees them on a running homeserver.

A client waiting in ``sync(timeout=30000, since=...)`` is woken by another user's
message, typing notification or read receipt, and returns with it well before its
timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nio import (
    AsyncClient,
    ReceiptEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    TypingNoticeEvent,
)

from tests.live.conftest import LiveServer
from tests.live.test_nio_accounts import run_async
from tests.live.test_nio_rooms import alice_and_bob_in_a_room

pytestmark = pytest.mark.live

LONG_POLL_MS = 30_000
# Returned "well before the timeout": anything under this is a wake-up, not a timeout.
WOKEN_WITHIN_S = 20


async def synced(client: AsyncClient) -> str:
    response = await client.sync(timeout=0, full_state=True)
    assert isinstance(response, SyncResponse), response
    return str(response.next_batch)


async def long_poll_across(
    client: AsyncClient, since: str, action: Callable[[], Awaitable[Any]]
) -> tuple[SyncResponse, float]:
    """Start a long-poll, do ``action`` while it waits; return its answer and duration."""
    started = time.monotonic()
    poll = asyncio.create_task(client.sync(timeout=LONG_POLL_MS, since=since))
    # Let the request reach the server and start waiting.
    await asyncio.sleep(0.5)
    assert not poll.done()
    await action()
    response = await poll
    assert isinstance(response, SyncResponse), response
    return response, time.monotonic() - started


@run_async
async def test_a_long_poll_returns_with_another_users_message(homeserver: LiveServer) -> None:
    async with alice_and_bob_in_a_room(homeserver) as room:
        since = await synced(room.alice)

        async def bob_speaks() -> None:
            sent = await room.bob.room_send(
                room.room_id, "m.room.message", {"msgtype": "m.text", "body": "psst"}
            )
            assert isinstance(sent, RoomSendResponse), sent

        response, elapsed = await long_poll_across(room.alice, since, bob_speaks)
        assert elapsed < WOKEN_WITHIN_S
        events = response.rooms.join[room.room_id].timeline.events
        assert [(e.sender, e.body) for e in events if isinstance(e, RoomMessageText)] == [
            (room.bob.user_id, "psst")
        ]


@run_async
async def test_a_long_poll_returns_with_typing_and_receipts(homeserver: LiveServer) -> None:
    async with alice_and_bob_in_a_room(homeserver) as room:
        since = await synced(room.alice)

        async def bob_types() -> None:
            await room.bob.room_typing(room.room_id, typing_state=True, timeout=30_000)

        response, elapsed = await long_poll_across(room.alice, since, bob_types)
        assert elapsed < WOKEN_WITHIN_S
        typing = [
            e
            for e in response.rooms.join[room.room_id].ephemeral
            if isinstance(e, TypingNoticeEvent)
        ]
        assert typing
        assert typing[-1].users == [room.bob.user_id]

        sent = await room.alice.room_send(
            room.room_id, "m.room.message", {"msgtype": "m.text", "body": "read me"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        since = await synced(room.alice)

        async def bob_reads() -> None:
            await room.bob.update_receipt_marker(room.room_id, sent.event_id)

        response, elapsed = await long_poll_across(room.alice, since, bob_reads)
        assert elapsed < WOKEN_WITHIN_S
        receipts = [
            receipt
            for e in response.rooms.join[room.room_id].ephemeral
            if isinstance(e, ReceiptEvent)
            for receipt in e.receipts
        ]
        assert any(
            r.event_id == sent.event_id and r.user_id == room.bob.user_id for r in receipts
        ), receipts
