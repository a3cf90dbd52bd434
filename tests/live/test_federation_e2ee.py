"""End-to-end encryption across servers, for real: matrix-nio clients with encryption, one
on Trellis and one on the other server (Synapse, or a second Trellis), federating over
TLS on loopback (tests/live/federation_peers.py).

Alice (on Trellis) makes an encrypted room and invites Bob (on the other server). Each
client learns the other's devices through its own server (/keys/query answered by the
other server's /user/keys/query or /user/devices), claims one-time keys across servers
(/keys/claim, /user/keys/claim) and sends the Megolm room key to-device; each decrypts
the other's message. Then a new device of Bob's, and one of Alice's, log in: the other
side's client learns of it from /sync's device_lists (an m.device_list_update EDU sent by
the new device's server), queries its keys, and the new device decrypts a message sent
after it arrived.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    RegisterResponse,
    RoomCreateResponse,
)

from tests.live.federation_peers import Network
from tests.live.test_nio_accounts import PASSWORD, new_localpart, run_async
from tests.live.test_nio_e2ee import (
    MEGOLM,
    needs_nio_e2e,
    publish_keys,
    receive,
    send_encrypted,
    sync_once,
    sync_until,
)

pytestmark = pytest.mark.live


@asynccontextmanager
async def e2e_client(base_url: str, store: Path, localpart: str) -> AsyncIterator[AsyncClient]:
    store.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(
        max_timeouts=2,
        max_limit_exceeded=0,
        request_timeout=60,
        encryption_enabled=True,
        store_sync_tokens=False,
    )
    client = AsyncClient(base_url, localpart, store_path=str(store), config=config)
    try:
        yield client
    finally:
        await client.close()


async def registered(client: AsyncClient) -> None:
    answer = await client.register(client.user, PASSWORD, device_name="first")
    assert isinstance(answer, RegisterResponse), answer
    await publish_keys(client)
    await sync_once(client)


async def second_device(client: AsyncClient) -> None:
    logged_in = await client.login(PASSWORD, device_name="second")
    assert isinstance(logged_in, LoginResponse), logged_in
    await publish_keys(client)
    await sync_once(client)


async def sees_new_device(watcher: AsyncClient, user_id: str, device_id: str) -> None:
    """``watcher``'s client finds ``device_id`` among ``user_id``'s devices: its /sync
    named ``user_id`` in device_lists.changed (nio queries keys only then), and the query
    found the device with its keys."""
    await sync_until(
        watcher,
        lambda r: device_id in watcher.device_store[user_id],
        f"{user_id}'s new device {device_id}",
    )


@needs_nio_e2e
@pytest.mark.parametrize("kind", ["synapse", "trellis"])
@run_async
async def test_clients_on_two_servers_decrypt_each_other_and_new_devices(
    network: Network, kind: str, tmp_path: Path
) -> None:
    peer_url, _peer_name = network.peer(kind)
    async with (
        e2e_client(network.home.url, tmp_path / "alice", new_localpart()) as alice,
        e2e_client(peer_url, tmp_path / "bob", new_localpart()) as bob,
    ):
        await registered(alice)
        await registered(bob)

        created = await alice.room_create(
            name=f"Secrets across servers ({kind})",
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
        await sync_until(alice, lambda r: bob.user_id in r.device_list.changed, "Bob's join")
        # Each client knows the other's device, through its own server.
        await sync_until(
            alice, lambda r: bob.device_id in alice.device_store[bob.user_id], "Bob's device"
        )
        await sync_until(
            bob, lambda r: alice.device_id in bob.device_store[alice.user_id], "Alice's device"
        )

        await send_encrypted(alice, room_id, f"from Trellis to {kind}")
        await receive(bob, room_id, f"from Trellis to {kind}")
        await send_encrypted(bob, room_id, f"from {kind} to Trellis")
        await receive(alice, room_id, f"from {kind} to Trellis")

        # A new device of Bob's, on the other server: Alice's client learns of it.
        async with e2e_client(peer_url, tmp_path / "bob2", bob.user) as bob2:
            await second_device(bob2)
            await sees_new_device(alice, bob.user_id, bob2.device_id)
            await alice.share_group_session(room_id, ignore_unverified_devices=True)
            await send_encrypted(alice, room_id, "for Bob's new device")
            await receive(bob2, room_id, "for Bob's new device")

        # A new device of Alice's, on Trellis: Bob's client learns of it.
        async with e2e_client(network.home.url, tmp_path / "alice2", alice.user) as alice2:
            await second_device(alice2)
            await sees_new_device(bob, alice.user_id, alice2.device_id)
            await bob.share_group_session(room_id, ignore_unverified_devices=True)
            await send_encrypted(bob, room_id, "for Alice's new device")
            await receive(alice2, room_id, "for Alice's new device")
