"""mautrix (the Python library bots and bridges are built on) against a running
homeserver: it logs in, uploads media, and downloads its own upload and another user's.

mautrix downloads through the authenticated endpoints of Matrix 1.11 only when
/versions lists v1.11; otherwise it uses the legacy ones, which serve no new media once
frozen, and could download nothing at all.
"""

from __future__ import annotations

import io
import json
import secrets
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mautrix.client import ClientAPI
from mautrix.types import SpecVersions, UserIdentifier
from PIL import Image

from tests.live.conftest import LiveServer
from tests.live.test_nio_accounts import run_async

pytestmark = pytest.mark.live

PASSWORD = "mautrix-password"


def _register(server: LiveServer) -> str:
    """A new user (plain HTTP, m.login.dummy); their user ID."""
    localpart = f"bot_{secrets.token_hex(4)}"
    body = {"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/register",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        user_id: str = json.loads(response.read())["user_id"]
        return user_id


@asynccontextmanager
async def mautrix_client(server: LiveServer) -> AsyncIterator[ClientAPI]:
    """A mautrix client of a new user, logged in with its password by mautrix itself."""
    user_id = _register(server)
    client = ClientAPI(user_id, base_url=server.url)
    try:
        login = await client.login(
            identifier=UserIdentifier.deserialize({"type": "m.id.user", "user": user_id}),
            password=PASSWORD,
            device_name="mautrix",
        )
        assert login.user_id == user_id
        yield client
    finally:
        await client.api.session.close()


def _png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@run_async
async def test_mautrix_downloads_its_own_upload_and_another_user_s(
    homeserver: LiveServer,
) -> None:
    async with mautrix_client(homeserver) as alice, mautrix_client(homeserver) as bob:
        versions = await alice.versions()
        assert versions.supports(SpecVersions.V111)  # so mautrix authenticates downloads

        alice_png = _png(640, 480, (200, 80, 40))
        alice_mxc = await alice.upload_media(alice_png, mime_type="image/png", filename="a.png")
        assert alice_mxc.startswith(f"mxc://{homeserver.server_name}/")
        bob_data = b"bob's notes\n" * 100
        bob_mxc = await bob.upload_media(bob_data, mime_type="text/plain", filename="notes.txt")

        assert await alice.download_media(alice_mxc) == alice_png
        assert await alice.download_media(bob_mxc) == bob_data
        assert await bob.download_media(alice_mxc) == alice_png

        thumbnail = await bob.download_thumbnail(
            alice_mxc, width=96, height=96, resize_method="crop"
        )
        with Image.open(io.BytesIO(thumbnail)) as image:
            assert image.size == (96, 96)


@run_async
async def test_mautrix_uploads_asynchronously_and_downloads(homeserver: LiveServer) -> None:
    """Matrix 1.7's asynchronous upload: mautrix creates the media ID, hands it back at
    once and uploads in the background; a download waits for the upload (timeout_ms)."""
    async with mautrix_client(homeserver) as alice, mautrix_client(homeserver) as bob:
        data = _png(32, 32, (10, 160, 90))
        mxc = await alice.upload_media(data, mime_type="image/png", async_upload=True)
        assert mxc.startswith(f"mxc://{homeserver.server_name}/")
        assert await bob.download_media(mxc, timeout_ms=20_000) == data
