"""Server-side key backups against a running homeserver, over plain HTTP (aiohttp).

No Python Matrix client exposes the key backup API (matrix-nio has none; mautrix-python
0.21 has none either), so these tests make the calls a client makes with aiohttp. They
check what only a real server with concurrent requests can show: uploads at once lose
no key, never count one twice and keep the better key whatever order they land in;
versions created at once each get their own number.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.conftest import LiveServer
from tests.live.test_concurrency import Client, User, http_client
from tests.live.test_nio_accounts import run_async

pytestmark = pytest.mark.live

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
WRITERS = 8
OWN_SESSIONS = 25
SHARED_SESSIONS = 5


def key(first_message_index: int, marker: str) -> dict[str, Any]:
    return {
        "first_message_index": first_message_index,
        "forwarded_count": 0,
        "is_verified": False,
        "session_data": {"ephemeral": "ZXBo", "ciphertext": marker, "mac": "bWFj"},
    }


async def create_version(client: Client, user: User) -> str:
    body = {"algorithm": ALGORITHM, "auth_data": {"public_key": "cHVibGlj"}}
    answer = await client.ok("POST", "room_keys/version", user, body)
    return str(answer["version"])


def keys(room_id: str | None = None, session_id: str | None = None) -> str:
    path = "room_keys/keys"
    for part in (room_id, session_id):
        if part is not None:
            path += "/" + quote(part, safe="")
    return path


@run_async
async def test_a_key_backup_round_trip(homeserver: LiveServer) -> None:
    room = f"!room:{homeserver.server_name}"
    # A megolm session ID is standard base64: "/" (sent as %2F) and "+" are common.
    s1 = "Ab/cd+Ef/GHijk"
    async with http_client(homeserver) as client:
        user = await client.register()
        version = await create_version(client, user)
        params = {"version": version}

        stored = await client.ok(
            "PUT", keys(), user, {"rooms": {room: {"sessions": {s1: key(4, "one")}}}}, params
        )
        assert stored["count"] == 1
        better = await client.ok("PUT", keys(room, s1), user, key(1, "better"), params)
        assert better["count"] == 1
        assert better["etag"] != stored["etag"]
        worse = await client.ok("PUT", keys(room), user, {"sessions": {s1: key(9, "w")}}, params)
        assert worse == better

        assert await client.ok("GET", keys(), user, params=params) == {
            "rooms": {room: {"sessions": {s1: key(1, "better")}}}
        }
        info = await client.ok("GET", "room_keys/version", user)
        assert (info["version"], info["count"], info["etag"]) == (version, 1, better["etag"])

        await client.ok("DELETE", f"room_keys/version/{version}", user)
        status, answer = await client.request("GET", keys(room, s1), user, params=params)
        assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")
        status, answer = await client.request("PUT", keys(room, s1), user, key(0, "x"), params)
        assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")


@run_async
async def test_concurrent_uploads_lose_nothing_and_keep_the_best_keys(
    homeserver: LiveServer,
) -> None:
    room = f"!busy:{homeserver.server_name}"
    async with http_client(homeserver) as client:
        user = await client.register()
        version = await create_version(client, user)
        params = {"version": version}

        async def writer(n: int) -> dict[str, Any]:
            # Its own sessions, plus the shared ones with a key that is better the lower n.
            sessions = {f"w{n}-{s}": key(0, f"w{n}") for s in range(OWN_SESSIONS)}
            sessions |= {f"shared{s}": key(n, f"w{n}") for s in range(SHARED_SESSIONS)}
            return await client.ok(
                "PUT", keys(), user, {"rooms": {room: {"sessions": sessions}}}, params
            )

        answers = await asyncio.gather(*(writer(n) for n in range(WRITERS)))

        total = WRITERS * OWN_SESSIONS + SHARED_SESSIONS
        # The last upload to commit saw every key.
        assert max(answer["count"] for answer in answers) == total
        backup = await client.ok("GET", keys(room), user, params=params)
        assert len(backup["sessions"]) == total
        for s in range(SHARED_SESSIONS):
            assert backup["sessions"][f"shared{s}"] == key(0, "w0")
        info = await client.ok("GET", f"room_keys/version/{version}", user)
        assert info["count"] == total

        # The same new session from many requests at once is one key.
        same = await asyncio.gather(
            *(
                client.ok("PUT", keys(room, "once"), user, key(3, "same"), params)
                for _ in range(WRITERS)
            )
        )
        assert {answer["count"] for answer in same} == {total + 1}
        assert len({answer["etag"] for answer in same}) == 1


@run_async
async def test_versions_created_at_once_are_numbered_apart(homeserver: LiveServer) -> None:
    async with http_client(homeserver) as client:
        user = await client.register()

        versions = await asyncio.gather(*(create_version(client, user) for _ in range(WRITERS)))

        assert len(set(versions)) == WRITERS
        current = await client.ok("GET", "room_keys/version", user)
        assert current["version"] == max(versions, key=int)
        status, answer = await client.request(
            "PUT", keys("!r:x", "s"), user, key(0, "old"), {"version": min(versions, key=int)}
        )
        assert status == 403
        assert answer["errcode"] == "M_WRONG_ROOM_KEYS_VERSION"
        assert answer["current_version"] == current["version"]
