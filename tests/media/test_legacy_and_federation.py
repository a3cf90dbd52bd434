"""The deprecated unauthenticated endpoints (frozen: only media from before the freeze)
and the federation media endpoints (for servers that sign their requests, X-Matrix)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from federation import client as federation_client
from federation.models import RemoteServerKey
from federation.transport import HttpResponse, Target
from protocol.signing import generate_signing_key
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, FakeNetwork, FakeServer, carol, network
from tests.media.conftest import MEDIA_V3, image_bytes, media_id_of, upload

__all__ = ["carol", "network"]

SERVER = "localhost:8008"
FEDERATION = "/_matrix/federation/v1/media"


def test_new_media_is_not_served_unauthenticated(api: MatrixTestClient, alice: Persona) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png"))

    download = api.get(f"{MEDIA_V3}/download/{SERVER}/{media_id}")
    thumb = api.get(f"{MEDIA_V3}/thumbnail/{SERVER}/{media_id}?width=32&height=32")

    assert (download.status, download.errcode) == (404, "M_NOT_FOUND")
    assert (thumb.status, thumb.errcode) == (404, "M_NOT_FOUND")


def test_media_from_before_the_freeze_stays_available(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.MEDIA_LEGACY_UNAUTHENTICATED = True
    old = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png", filename="o.png"))
    settings.MEDIA_LEGACY_UNAUTHENTICATED = False
    new = media_id_of(upload(api, alice, b"new", "text/plain"))

    got = api.get(f"{MEDIA_V3}/download/{SERVER}/{old}")
    named = api.get(f"{MEDIA_V3}/download/{SERVER}/{old}/other.png")
    thumb = api.get(f"{MEDIA_V3}/thumbnail/{SERVER}/{old}?width=32&height=32&method=crop")

    assert got.status == 200
    assert got.headers["Content-Disposition"] == 'inline; filename="o.png"'
    assert named.headers["Content-Disposition"] == 'inline; filename="other.png"'
    assert thumb.status == 200
    assert thumb.headers["Content-Type"] == "image/jpeg"
    assert api.get(f"{MEDIA_V3}/download/{SERVER}/{new}").status == 404
    # r0 too, for old clients.
    assert api.get(f"/_matrix/media/r0/download/{SERVER}/{old}").status == 200


def _federation_get(
    api: MatrixTestClient, path: str, authorization: str | None
) -> tuple[int, Any, Any]:
    headers = {"Authorization": authorization} if authorization else {}
    response = api.client.get(path, headers=headers)
    body = response.json() if response["Content-Type"] == "application/json" else None
    return response.status_code, body, response


KINDS = {
    "download": "download/{media_id}",
    "thumbnail": "thumbnail/{media_id}?width=32&height=32",
}


@pytest.mark.parametrize("kind", KINDS)
def test_signed_federation_requests_are_served(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, kind: str
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png"))
    path = f"{FEDERATION}/" + KINDS[kind].format(media_id=media_id)

    status, _, response = _federation_get(api, path, carol.authorization("GET", path))

    assert status == 200
    assert response["Content-Type"].startswith("multipart/mixed; boundary=")
    assert RemoteServerKey.objects.filter(server_name=CAROL).exists()


def _signed_by_impostor(path: str) -> str:
    return FakeServer(CAROL, signing_key=generate_signing_key("carol1")).authorization("GET", path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        pytest.param(lambda carol, path: None, 401, id="unsigned"),
        pytest.param(lambda carol, path: "Bearer abc", 401, id="access token"),
        pytest.param(
            lambda carol, path: (
                'X-Matrix origin="evil.example",destination="localhost:8008",'
                'key="ed25519:a",sig="x"'
            ),
            401,
            id="unknown server",
        ),
        pytest.param(lambda carol, path: _signed_by_impostor(path), 401, id="bad signature"),
        pytest.param(
            lambda carol, path: carol.authorization("GET", path, destination="other.example"),
            401,
            id="another destination",
        ),
        pytest.param(
            lambda carol, path: carol.authorization("GET", path + "x"), 401, id="another target"
        ),
        pytest.param(lambda carol, path: "X-Matrix origin=", 400, id="malformed"),
    ],
)
def test_unsigned_and_badly_signed_federation_requests_are_refused(
    api: MatrixTestClient,
    alice: Persona,
    network: FakeNetwork,
    carol: FakeServer,
    kind: str,
    authorization: Any,
    status: int,
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png"))
    path = f"{FEDERATION}/" + KINDS[kind].format(media_id=media_id)

    got, body, _ = _federation_get(api, path, authorization(carol, path))

    assert (got, body["errcode"]) == (status, "M_UNAUTHORIZED")
    if status == 401:
        assert body["error"]


def test_a_key_server_that_cannot_be_reached_means_unauthorized(
    api: MatrixTestClient, alice: Persona, carol: FakeServer
) -> None:
    carol.reachable = False
    media_id = media_id_of(upload(api, alice, b"data", "text/plain"))
    path = f"{FEDERATION}/download/{media_id}"

    status, body, _ = _federation_get(api, path, carol.authorization("GET", path))

    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")
    assert not RemoteServerKey.objects.exists()


def test_signed_requests_for_unknown_media_are_not_found(
    api: MatrixTestClient, carol: FakeServer
) -> None:
    path = f"{FEDERATION}/download/nosuchmedia"
    status, body, _ = _federation_get(api, path, carol.authorization("GET", path))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


def test_trellis_asks_trellis_with_a_signed_request(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbound client signs; the wire is Django's test client; the inbound side checks.
    media_id = media_id_of(upload(api, alice, b"hello", "text/plain", filename="h.txt"))
    wire = Client(raise_request_exception=False)

    def send(target: Target, method: str, path: str, **kwargs: Any) -> HttpResponse:
        response = wire.generic(method, path, headers=kwargs.get("headers") or {})
        return HttpResponse(response.status_code, dict(response.headers), response.content)

    monkeypatch.setattr(federation_client, "send", send)
    monkeypatch.setattr(settings, "FEDERATION_URL_OVERRIDES", {"localhost:8008": "http://x"})

    response = federation_client.send_request(
        "localhost:8008", "GET", f"{FEDERATION}/download/{media_id}?timeout_ms=1000"
    )

    assert response.status == 200
    assert _parts(response.body, response.headers["Content-Type"])[1][1] == b"hello"


def _parts(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    boundary = re.search(r"boundary=(\S+)", content_type)
    assert boundary is not None
    delimiter = b"--" + boundary.group(1).encode()
    assert body.endswith(delimiter + b"--\r\n")
    parts = []
    for raw in body.split(delimiter)[1:-1]:
        head, _, payload = raw.strip(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers, payload))
    return parts


def test_the_federation_answer_is_multipart_with_metadata_and_bytes(
    api: MatrixTestClient, alice: Persona, carol: FakeServer
) -> None:
    data = b"\r\n--not-a-boundary\r\n" + image_bytes(50, 50)
    media_id = media_id_of(upload(api, alice, data, "application/octet-stream", filename="f.bin"))

    path = f"{FEDERATION}/download/{media_id}"
    response = api.client.get(path, headers={"Authorization": carol.authorization("GET", path)})

    assert response.status_code == 200
    parts = _parts(response.content, response["Content-Type"])
    assert parts[0] == ({"Content-Type": "application/json"}, b"{}")
    assert parts[1][0] == {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": 'attachment; filename="f.bin"',
    }
    assert parts[1][1] == data


def test_the_federation_thumbnail_is_multipart(
    api: MatrixTestClient, alice: Persona, carol: FakeServer
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(400, 300, "JPEG"), "image/jpeg"))

    path = f"{FEDERATION}/thumbnail/{media_id}?width=96&height=96&method=crop"
    response = api.client.get(path, headers={"Authorization": carol.authorization("GET", path)})

    assert response.status_code == 200
    parts = _parts(response.content, response["Content-Type"])
    assert parts[1][0]["Content-Type"] == "image/jpeg"
    assert parts[1][0]["Content-Disposition"] == 'inline; filename="thumbnail.jpg"'
    assert parts[1][1][:2] == b"\xff\xd8"
