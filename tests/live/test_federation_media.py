"""Remote media, for real: a Trellis user downloads another server's user's image, and a
thumbnail of it, through Trellis's client API; Trellis fetches them over federation
(GET /_matrix/federation/v1/media/download|thumbnail, signed, multipart answers) from
Synapse or from a second Trellis (tests/live/federation_peers.py), and its user gets the
same bytes as the uploader's own server serves its users.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.live.federation_peers import Client, Network
from tests.media.conftest import image_bytes

pytestmark = pytest.mark.live

THUMBNAIL = "width=96&height=96&method=crop"


def fetch(client: Client, path: str) -> tuple[int, bytes, dict[str, str]]:
    """GET through ``client``'s server, as that user: (status, body, headers)."""
    request = urllib.request.Request(
        client.base_url + path, headers={"Authorization": f"Bearer {client.token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def upload(client: Client, data: bytes, content_type: str, filename: str) -> str:
    request = urllib.request.Request(
        f"{client.base_url}/_matrix/media/v3/upload?filename={filename}",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=90) as response:
        content_uri: str = json.loads(response.read())["content_uri"]
    return content_uri


@pytest.mark.parametrize("kind", ["synapse", "trellis"])
def test_a_trellis_user_downloads_another_servers_image_and_its_thumbnail(
    network: Network, kind: str
) -> None:
    peer_url, peer_name = network.peer(kind)
    carol = Client.register(peer_url, f"carol-media-{kind}")
    alice = Client.register(network.home.url, f"alice-media-{kind}")
    image = image_bytes(640, 480, "PNG")
    mxc = upload(carol, image, "image/png", "photo.png")
    assert mxc.startswith(f"mxc://{peer_name}/")
    media_id = mxc.rsplit("/", 1)[1]
    download = f"/_matrix/client/v1/media/download/{peer_name}/{media_id}"
    thumbnail = f"/_matrix/client/v1/media/thumbnail/{peer_name}/{media_id}?{THUMBNAIL}"

    status, body, headers = fetch(alice, download)

    assert status == 200, (body[:500], network.home.server.log()[-3000:])
    assert body == image
    assert headers["Content-Type"] == "image/png"
    assert fetch(carol, download)[1] == body

    thumb_status, thumb, thumb_headers = fetch(alice, thumbnail)
    theirs_status, theirs, _ = fetch(carol, thumbnail)

    assert thumb_status == 200, (thumb[:500], network.home.server.log()[-3000:])
    assert theirs_status == 200
    assert thumb == theirs
    assert thumb_headers["Content-Type"] in ("image/jpeg", "image/png", "image/webp")
    # Served from the cache the second time, byte for byte.
    assert fetch(alice, download)[1] == image
    assert fetch(alice, thumbnail)[1] == theirs


@pytest.mark.parametrize("kind", ["synapse", "trellis"])
def test_media_the_other_server_does_not_have_is_not_found(network: Network, kind: str) -> None:
    _, peer_name = network.peer(kind)
    alice = Client.register(network.home.url, f"alice-missing-{kind}")

    status, body, _ = fetch(
        alice, f"/_matrix/client/v1/media/download/{peer_name}/NoSuchMediaHere0123"
    )

    assert status == 404, body
    assert json.loads(body)["errcode"] == "M_NOT_FOUND"
