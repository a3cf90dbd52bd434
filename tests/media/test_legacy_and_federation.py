"""The deprecated unauthenticated endpoints (frozen: only media from before the freeze)
and the federation media endpoints (refused until X-Matrix verification exists)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from media import federation
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import MEDIA_V3, image_bytes, media_id_of, upload

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


@pytest.mark.parametrize("kind", ["download", "thumbnail"])
@pytest.mark.parametrize(
    "authorization",
    [None, 'X-Matrix origin="evil.example",destination="localhost:8008",key="ed25519:a",sig="x"'],
)
def test_federation_requests_are_refused_until_signatures_can_be_checked(
    api: MatrixTestClient, alice: Persona, kind: str, authorization: str | None
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png"))
    headers = {"Authorization": authorization} if authorization else {}

    response = api.client.get(
        f"{FEDERATION}/{kind}/{media_id}", {"width": 32, "height": 32}, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"


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
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer's shape, once a request is authenticated (which nothing can be yet).
    monkeypatch.setattr(federation, "authenticate_federation_request", lambda r: "other.example")
    data = b"\r\n--not-a-boundary\r\n" + image_bytes(50, 50)
    media_id = media_id_of(upload(api, alice, data, "application/octet-stream", filename="f.bin"))

    response = api.client.get(f"{FEDERATION}/download/{media_id}")

    assert response.status_code == 200
    parts = _parts(response.content, response["Content-Type"])
    assert parts[0] == ({"Content-Type": "application/json"}, b"{}")
    assert parts[1][0] == {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": 'attachment; filename="f.bin"',
    }
    assert parts[1][1] == data


def test_the_federation_thumbnail_is_multipart(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(federation, "authenticate_federation_request", lambda r: "other.example")
    media_id = media_id_of(upload(api, alice, image_bytes(400, 300, "JPEG"), "image/jpeg"))

    response = api.client.get(
        f"{FEDERATION}/thumbnail/{media_id}", {"width": 96, "height": 96, "method": "crop"}
    )

    assert response.status_code == 200
    parts = _parts(response.content, response["Content-Type"])
    assert parts[1][0]["Content-Type"] == "image/jpeg"
    assert parts[1][0]["Content-Disposition"] == 'inline; filename="thumbnail.jpg"'
    assert parts[1][1][:2] == b"\xff\xd8"
