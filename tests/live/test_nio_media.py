"""Media on a running homeserver: Alice uploads an image with matrix-nio and sends it
to a room; Bob downloads it and a thumbnail through the authenticated endpoints.
An upload whose client goes away halfway leaves nothing servable behind."""

from __future__ import annotations

import io
import json
import os
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from nio import (
    JoinResponse,
    MemoryDownloadResponse,
    ResizingMethod,
    RoomCreateResponse,
    RoomSendResponse,
    ThumbnailResponse,
    UploadResponse,
)
from PIL import Image

from tests.live.conftest import LiveServer
from tests.live.test_nio_accounts import registered, run_async

pytestmark = pytest.mark.live


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, "JPEG")
    return out.getvalue()


@run_async
async def test_an_image_uploaded_by_alice_is_downloaded_and_thumbnailed_by_bob(
    homeserver: LiveServer,
) -> None:
    data = _jpeg(800, 600)
    async with registered(homeserver) as alice, registered(homeserver) as bob:
        uploaded, keys = await alice.upload(
            io.BytesIO(data), content_type="image/jpeg", filename="sunset.jpg", filesize=len(data)
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        assert keys is None
        uri = uploaded.content_uri
        assert uri.startswith(f"mxc://{homeserver.server_name}/")

        room = await alice.room_create(invite=[bob.user_id])
        assert isinstance(room, RoomCreateResponse), room
        sent = await alice.room_send(
            room.room_id,
            "m.room.message",
            {"msgtype": "m.image", "body": "sunset.jpg", "url": uri, "info": {"size": len(data)}},
        )
        assert isinstance(sent, RoomSendResponse), sent
        assert isinstance(await bob.join(room.room_id), JoinResponse)

        downloaded = await bob.download(mxc=uri)
        assert isinstance(downloaded, MemoryDownloadResponse), downloaded
        assert downloaded.body == data
        assert downloaded.content_type == "image/jpeg"
        assert downloaded.filename == "sunset.jpg"

        server_name, media_id = uri[len("mxc://") :].split("/")
        thumb = await bob.thumbnail(server_name, media_id, 96, 96, ResizingMethod.crop)
        assert isinstance(thumb, ThumbnailResponse), thumb
        assert thumb.content_type == "image/jpeg"
        with Image.open(io.BytesIO(thumb.body)) as img:
            assert img.size == (96, 96)
        scaled = await bob.thumbnail(server_name, media_id, 320, 240, ResizingMethod.scale)
        assert isinstance(scaled, ThumbnailResponse), scaled
        with Image.open(io.BytesIO(scaled.body)) as img:
            assert img.size == (320, 240)


@run_async
async def test_a_large_file_is_streamed_back_whole(homeserver: LiveServer) -> None:
    data = os.urandom(6 * 1024 * 1024 + 7)
    async with registered(homeserver) as alice, registered(homeserver) as bob:
        uploaded, _ = await alice.upload(
            io.BytesIO(data), content_type="video/mp4", filename="clip.mp4", filesize=len(data)
        )
        assert isinstance(uploaded, UploadResponse), uploaded

        downloaded = await bob.download(mxc=uploaded.content_uri)

        assert isinstance(downloaded, MemoryDownloadResponse), downloaded
        assert downloaded.content_type == "video/mp4"
        assert len(downloaded.body) == len(data)
        assert downloaded.body == data


def _request(
    server: LiveServer, method: str, path: str, token: str, body: bytes = b""
) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=body if method != "GET" else None,
        method=method,
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@run_async
async def test_an_upload_that_stops_halfway_is_never_served(homeserver: LiveServer) -> None:
    async with registered(homeserver) as alice:
        token = alice.access_token
        status, created = _request(homeserver, "POST", "/_matrix/media/v1/create", token)
        assert status == 200, created
        media_id = str(created["content_uri"]).rsplit("/", 1)[1]
        path = f"/_matrix/media/v3/upload/{homeserver.server_name}/{media_id}"

        # Announce 1 MB, send 64 KB, hang up.
        url = urlsplit(homeserver.url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(
                (
                    f"PUT {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {1024 * 1024}\r\n\r\n"
                ).encode()
                + b"x" * 65536
            )

        status, body = _request(
            homeserver,
            "GET",
            f"/_matrix/client/v1/media/download/{homeserver.server_name}/{media_id}?timeout_ms=0",
            token,
        )
        assert (status, body.get("errcode")) == (504, "M_NOT_YET_UPLOADED")
        media_dir = homeserver.log_path.parent / "media"
        assert not [p for p in media_dir.rglob("*") if p.is_file() and media_id in str(p)]

        # The ID is still the client's to fill in.
        status, body = _request(homeserver, "PUT", path, token, b"complete")
        assert status == 200, body
        done = await alice.download(mxc=str(created["content_uri"]))
        assert isinstance(done, MemoryDownloadResponse), done
        assert done.body == b"complete"
