"""End-to-end encryption with real clients: matrix-nio with its e2e extra (vodozemac)
against a running homeserver.

Alice and Bob publish their keys, Alice creates an encrypted room (m.room.encryption in
the initial state) and invites Bob; each sends a message that the other's client
decrypts (Olm sessions from claimed one-time keys carry the Megolm room keys as
m.room.encrypted to-device messages). Then Bob logs in on a second device; Alice's
client learns of it from /sync's device_lists, queries its keys, shares the room key
with it, and the new device decrypts Alice's next message. The server only ever sees
ciphertext: the room's events are m.room.encrypted. And concurrent /keys/claim requests
over separate connections never receive the same one-time key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    LoginResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)
from nio.crypto import ENCRYPTION_ENABLED

from tests.conftest import Persona
from tests.e2ee.helpers import Device
from tests.live.conftest import LiveServer
from tests.live.test_concurrency import http_client
from tests.live.test_nio_accounts import PASSWORD, new_localpart, run_async

pytestmark = pytest.mark.live

needs_nio_e2e = pytest.mark.skipif(
    not ENCRYPTION_ENABLED,
    reason="matrix-nio's e2e extra is not installed (pip install 'matrix-nio[e2e]')",
)

MEGOLM = "m.megolm.v1.aes-sha2"
SYNC_ROUNDS = 15


@asynccontextmanager
async def e2e_client(
    server: LiveServer, store: Path, localpart: str
) -> AsyncIterator[AsyncClient]:
    store.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(
        max_timeouts=2,
        max_limit_exceeded=0,
        request_timeout=30,
        encryption_enabled=True,
        store_sync_tokens=False,
    )
    client = AsyncClient(server.url, localpart, store_path=str(store), config=config)
    try:
        yield client
    finally:
        await client.close()


async def publish_keys(client: AsyncClient) -> None:
    assert client.should_upload_keys
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    assert uploaded.signed_curve25519_count > 0


async def sync_once(client: AsyncClient) -> SyncResponse:
    """One /sync, then what nio's sync loop does after it: upload, query, claim keys."""
    response = await client.sync(timeout=500)
    assert isinstance(response, SyncResponse), response
    if client.should_upload_keys:
        assert isinstance(await client.keys_upload(), KeysUploadResponse)
    if client.should_query_keys:
        assert isinstance(await client.keys_query(), KeysQueryResponse)
    return response


async def sync_until(
    client: AsyncClient, done: Callable[[SyncResponse], bool], what: str
) -> SyncResponse:
    for _ in range(SYNC_ROUNDS):
        response = await sync_once(client)
        if done(response):
            return response
    pytest.fail(f"{client.user_id}/{client.device_id}: {what} never arrived")


def decrypted_texts(response: SyncResponse, room_id: str) -> list[str]:
    """Bodies of the room's messages in this sync that the client decrypted."""
    room = response.rooms.join.get(room_id)
    if room is None:
        return []
    return [
        event.body
        for event in room.timeline.events
        if isinstance(event, RoomMessageText) and event.decrypted
    ]


async def send_encrypted(client: AsyncClient, room_id: str, body: str) -> None:
    sent = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent


async def receive(client: AsyncClient, room_id: str, body: str) -> None:
    await sync_until(
        client, lambda r: body in decrypted_texts(r, room_id), f"the decrypted {body!r}"
    )


@needs_nio_e2e
@run_async
async def test_two_clients_and_a_late_third_device_decrypt_each_other(
    homeserver: LiveServer, tmp_path: Path
) -> None:
    async with (
        e2e_client(homeserver, tmp_path / "alice", new_localpart()) as alice,
        e2e_client(homeserver, tmp_path / "bob", new_localpart()) as bob,
    ):
        for client in (alice, bob):
            registered = await client.register(client.user, PASSWORD, device_name="first")
            assert isinstance(registered, RegisterResponse), registered
            await publish_keys(client)
            await sync_once(client)

        created = await alice.room_create(
            name="Secrets",
            invite=[bob.user_id],
            initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            ],
        )
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await sync_until(bob, lambda r: room_id in r.rooms.invite, "the invite")
        assert isinstance(await bob.join(room_id), JoinResponse)
        await sync_until(bob, lambda r: room_id in r.rooms.join, "the joined room")
        # Alice's client learns that Bob joined: device_lists names him.
        await sync_until(alice, lambda r: bob.user_id in r.device_list.changed, "Bob's join")
        assert alice.rooms[room_id].encrypted
        assert bob.rooms[room_id].encrypted

        await send_encrypted(alice, room_id, "the owl flies at midnight")
        await receive(bob, room_id, "the owl flies at midnight")
        await send_encrypted(bob, room_id, "the owl has landed")
        await receive(alice, room_id, "the owl has landed")

        # Bob's second device, added later.
        async with e2e_client(homeserver, tmp_path / "bob2", bob.user) as bob2:
            logged_in = await bob2.login(PASSWORD, device_name="second")
            assert isinstance(logged_in, LoginResponse), logged_in
            assert bob2.device_id != bob.device_id
            await publish_keys(bob2)
            await sync_once(bob2)

            await sync_until(
                alice,
                lambda r: bob.user_id in r.device_list.changed,
                "Bob's new device in device_lists",
            )
            assert bob2.device_id in alice.device_store[bob.user_id]
            # Share the room's current Megolm session with the new device.
            await alice.share_group_session(room_id, ignore_unverified_devices=True)
            await send_encrypted(alice, room_id, "a new device joins the conspiracy")
            await receive(bob2, room_id, "a new device joins the conspiracy")
            await receive(bob, room_id, "a new device joins the conspiracy")

        # What the server stored and serves is ciphertext (nio's room_messages would
        # decrypt it, so ask without nio's parsing).
        response = await alice.send(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages?dir=b&limit=50",
            headers={"Authorization": f"Bearer {alice.access_token}"},
        )
        assert response.status == 200
        chunk = (await response.json())["chunk"]
        sent = [e for e in chunk if "state_key" not in e]
        assert len(sent) == 3
        assert {e["type"] for e in sent} == {"m.room.encrypted"}
        assert all(e["content"]["algorithm"] == MEGOLM for e in sent)


CLAIMS = 60
ONE_TIME_KEYS = 40


@run_async
async def test_concurrent_claims_on_the_live_server_never_share_a_key(
    homeserver: LiveServer,
) -> None:
    """Many /keys/claim requests at once, over separate connections: each one-time key is
    handed out once, and the rest get the fallback key."""
    async with http_client(homeserver) as client:
        owner, claimer = await asyncio.gather(client.register(), client.register())
        whoami = await client.ok("GET", "account/whoami", owner)
        device = Device(
            Persona("owner", "", owner.user_id, owner.access_token, whoami["device_id"])
        )
        keys = device.one_time_keys(ONE_TIME_KEYS)
        fallback = device.fallback_key()
        await client.ok(
            "POST",
            "keys/upload",
            owner,
            {
                "device_keys": device.device_keys(),
                "one_time_keys": keys,
                "fallback_keys": fallback,
            },
        )
        wanted = {"one_time_keys": {owner.user_id: {device.device_id: "signed_curve25519"}}}

        answers = await asyncio.gather(
            *(client.ok("POST", "keys/claim", claimer, wanted) for _ in range(CLAIMS))
        )

    handed_out = [
        key_id
        for answer in answers
        for key_id in answer["one_time_keys"][owner.user_id][device.device_id]
    ]
    (fallback_id,) = fallback
    one_time = [k for k in handed_out if k != fallback_id]
    assert sorted(one_time) == sorted(keys)
    assert handed_out.count(fallback_id) == CLAIMS - ONE_TIME_KEYS
