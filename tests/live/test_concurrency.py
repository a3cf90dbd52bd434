"""Many clients at once against a running homeserver, over plain HTTP (aiohttp).

Concurrent sends into one room must all persist, each exactly once, in one total
order that /messages pages through identically in both directions; a transaction
retried concurrently must still create one event (Client-Server API, "Transaction
identifiers"). The forward extremities behind this are checked in
tests/rooms/test_concurrency.py.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.live.conftest import LiveServer
from tests.live.test_nio_accounts import run_async

pytestmark = pytest.mark.live

USERS = 5
SENDS = 100
MAX_IN_FLIGHT = 20
RETRIES = 10
PAGE = 7


@dataclass
class User:
    user_id: str
    access_token: str


class Client:
    """The few Client-Server API calls these tests make, on one aiohttp session."""

    def __init__(self, server: LiveServer, session: aiohttp.ClientSession) -> None:
        self.base = f"{server.url}/_matrix/client/v3"
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        user: User | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {user.access_token}"} if user else {}
        async with self.session.request(
            method, f"{self.base}/{path}", json=body, params=params, headers=headers
        ) as response:
            return response.status, await response.json()

    async def ok(
        self,
        method: str,
        path: str,
        user: User | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        status, answer = await self.request(method, path, user, body, params)
        assert status == 200, (method, path, status, answer)
        return answer

    async def register(self) -> User:
        """A new user, through the registration's user-interactive auth (m.login.dummy)."""
        body: dict[str, Any] = {
            "username": f"user_{secrets.token_hex(4)}",
            "password": "correct horse battery staple",
        }
        status, answer = await self.request("POST", "register", body=body)
        if status == 401:
            body["auth"] = {"type": "m.login.dummy", "session": answer.get("session")}
            status, answer = await self.request("POST", "register", body=body)
        assert status == 200, answer
        return User(answer["user_id"], answer["access_token"])

    async def create_room(self, creator: User) -> str:
        answer = await self.ok("POST", "createRoom", creator, {"preset": "public_chat"})
        return str(answer["room_id"])

    async def join(self, user: User, room_id: str) -> None:
        await self.ok("POST", f"join/{quote(room_id)}", user, {})

    def send_path(self, room_id: str, txn_id: str) -> str:
        return f"rooms/{quote(room_id)}/send/m.room.message/{quote(txn_id)}"

    async def send(self, user: User, room_id: str, body: str, txn_id: str) -> str:
        content = {"msgtype": "m.text", "body": body}
        answer = await self.ok("PUT", self.send_path(room_id, txn_id), user, content)
        return str(answer["event_id"])

    async def messages(
        self, user: User, room_id: str, direction: str, limit: int = PAGE
    ) -> list[dict[str, Any]]:
        """The room's whole history in ``direction``, page by page."""
        events: list[dict[str, Any]] = []
        params = {"dir": direction, "limit": str(limit)}
        while True:
            page = await self.ok("GET", f"rooms/{quote(room_id)}/messages", user, params=params)
            events.extend(page["chunk"])
            if "end" not in page or not page["chunk"]:
                return events
            params = {**params, "from": page["end"]}


@asynccontextmanager
async def http_client(server: LiveServer) -> AsyncIterator[Client]:
    # One connection per request in flight, so the server really sees them at once.
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT + RETRIES)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield Client(server, session)


async def room_with_members(client: Client, count: int) -> tuple[str, list[User]]:
    users = list(await asyncio.gather(*(client.register() for _ in range(count))))
    room_id = await client.create_room(users[0])
    await asyncio.gather(*(client.join(user, room_id) for user in users[1:]))
    return room_id, users


def messages_only(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == "m.room.message"]


@run_async
async def test_concurrent_sends_all_persist_once_in_one_order(homeserver: LiveServer) -> None:
    async with http_client(homeserver) as client:
        room_id, users = await room_with_members(client, USERS)
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def send(n: int) -> tuple[str, str]:
            user = users[n % USERS]
            body = f"message {n} from {user.user_id}"
            async with in_flight:
                return body, await client.send(user, room_id, body, f"txn-{n}")

        sent = dict(await asyncio.gather(*(send(n) for n in range(SENDS))))

        assert len(set(sent.values())) == SENDS, "every send got its own event ID"
        backwards = messages_only(await client.messages(users[0], room_id, "b"))
        assert len(backwards) == SENDS
        assert {event["content"]["body"]: event["event_id"] for event in backwards} == sent
        assert len({event["event_id"] for event in backwards}) == SENDS
        for event in backwards:
            assert event["sender"] in event["content"]["body"]

        # One total order: paging forwards from the start gives exactly the reverse.
        forwards = messages_only(await client.messages(users[1], room_id, "f"))
        assert [event["event_id"] for event in forwards] == [
            event["event_id"] for event in reversed(backwards)
        ]
        # And pages of another size agree with it: no event is on two pages or none.
        whole = messages_only(await client.messages(users[2], room_id, "b", limit=SENDS + 50))
        assert [event["event_id"] for event in whole] == [event["event_id"] for event in backwards]


@run_async
async def test_a_transaction_retried_concurrently_creates_one_event(
    homeserver: LiveServer,
) -> None:
    async with http_client(homeserver) as client:
        room_id, [alice, bob] = await room_with_members(client, 2)
        txn_id = f"retry-{secrets.token_hex(4)}"

        event_ids = await asyncio.gather(
            *(client.send(alice, room_id, "said once", txn_id) for _ in range(RETRIES))
        )

        assert len(set(event_ids)) == 1, event_ids
        [event] = messages_only(await client.messages(bob, room_id, "b"))
        assert event["event_id"] == event_ids[0]
        assert event["content"]["body"] == "said once"

        # The same transaction ID from another user is another transaction.
        other = await client.send(bob, room_id, "said once", txn_id)
        assert other != event_ids[0]


@run_async
async def test_a_redaction_retried_concurrently_creates_one_event(
    homeserver: LiveServer,
) -> None:
    async with http_client(homeserver) as client:
        room_id, [alice, bob] = await room_with_members(client, 2)
        target = await client.send(alice, room_id, "regrettable", "first")
        path = f"rooms/{quote(room_id)}/redact/{quote(target)}/retry"

        answers = await asyncio.gather(
            *(client.ok("PUT", path, alice, {"reason": "oops"}) for _ in range(RETRIES))
        )

        event_ids = {answer["event_id"] for answer in answers}
        assert len(event_ids) == 1, answers
        history = await client.messages(bob, room_id, "b")
        redactions = [event for event in history if event["type"] == "m.room.redaction"]
        assert [event["event_id"] for event in redactions] == list(event_ids)
        [redacted] = messages_only(history)
        assert redacted["content"] == {}
        assert redacted["unsigned"]["redacted_because"]["event_id"] in event_ids
