"""The content repository through HTTP: upload, download, config, and the refusals.

Client-Server API, "Content repository" (content-repo.yaml, authed-content-repo.yaml).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from media import serving
from media.models import LocalMedia
from media.services import uploads
from protocol.errors import MatrixError
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import (
    MEDIA_V1,
    MEDIA_V3,
    image_bytes,
    media_id_of,
    stored_files,
    upload,
)

SERVER = "localhost:8008"


def download(api: MatrixTestClient, who: Persona | None, media_id: str, suffix: str = "") -> Any:
    token = who.access_token if who else None
    return api.get(f"{MEDIA_V1}/download/{SERVER}/{media_id}{suffix}", token=token)


def test_upload_then_another_user_downloads_it(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    data = image_bytes()
    media_id = media_id_of(upload(api, alice, data, "image/png", filename="cat.png"))

    got = download(api, bob, media_id)

    assert got.status == 200
    assert got.body == data
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"] == 'inline; filename="cat.png"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert got.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


def test_the_file_name_in_the_path_overrides_the_uploaded_one(
    api: MatrixTestClient, alice: Persona
) -> None:
    media_id = media_id_of(upload(api, alice, b"hello", "text/plain", filename="a.txt"))

    got = download(api, alice, media_id, "/b%C3%A4r.txt")

    assert got.status == 200
    assert got.body == b"hello"
    assert got.headers["Content-Disposition"] == "inline; filename*=utf-8''b%C3%A4r.txt"


def test_media_ids_are_random_and_url_safe(api: MatrixTestClient, alice: Persona) -> None:
    first = media_id_of(upload(api, alice, b"same", "text/plain"))
    second = media_id_of(upload(api, alice, b"same", "text/plain"))

    assert first != second
    assert len(first) >= 24
    assert all(c.isalnum() or c in "-_" for c in first + second)


@pytest.mark.parametrize(
    "content_type",
    ["text/html", "image/svg+xml", "application/javascript", "text/html; charset=utf-8"],
)
def test_active_content_is_served_as_an_attachment(
    api: MatrixTestClient, alice: Persona, content_type: str
) -> None:
    media_id = media_id_of(upload(api, alice, b"<script>alert(1)</script>", content_type))

    got = download(api, alice, media_id)

    assert got.status == 200
    assert got.headers["Content-Type"] == content_type
    assert got.headers["Content-Disposition"] == "attachment"
    assert "script-src 'none'" in got.headers["Content-Security-Policy"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_no_content_type_means_octet_stream(api: MatrixTestClient, alice: Persona) -> None:
    media_id = media_id_of(upload(api, alice, b"\x00\x01", content_type=""))

    got = download(api, alice, media_id)

    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"] == "attachment"


def test_download_needs_an_access_token(api: MatrixTestClient, alice: Persona) -> None:
    media_id = media_id_of(upload(api, alice, b"x", "text/plain"))

    got = download(api, None, media_id)

    assert got.status == 401
    assert got.errcode == "M_MISSING_TOKEN"


def test_upload_needs_an_access_token(api: MatrixTestClient) -> None:
    got = api.request("POST", f"{MEDIA_V3}/upload", raw=b"x", content_type="text/plain")

    assert got.status == 401
    assert got.errcode == "M_MISSING_TOKEN"
    assert LocalMedia.objects.count() == 0


def test_config_advertises_the_upload_limit(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.MAX_UPLOAD_SIZE = 12345

    for path in (f"{MEDIA_V1}/config", f"{MEDIA_V3}/config"):
        got = api.get(path, token=alice.access_token)
        assert got.status == 200
        assert got.body == {"m.upload.size": 12345}


def test_too_large_upload_is_refused_and_nothing_is_kept(
    api: MatrixTestClient, alice: Persona, settings: Any, media_root: Path
) -> None:
    settings.MAX_UPLOAD_SIZE = 1000

    got = upload(api, alice, b"x" * 1001, "text/plain")

    assert got.status == 413
    assert got.errcode == "M_TOO_LARGE"
    assert LocalMedia.objects.count() == 0
    assert stored_files(media_root) == []


def test_an_upload_of_exactly_the_limit_is_accepted(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.MAX_UPLOAD_SIZE = 1000

    assert upload(api, alice, b"x" * 1000, "text/plain").status == 200


def test_the_limit_holds_while_reading_without_a_content_length(
    settings: Any, media_root: Path, db: None
) -> None:
    settings.MAX_UPLOAD_SIZE = 1000

    with pytest.raises(MatrixError) as raised:
        uploads.do_upload(
            "@alice:localhost:8008",
            io.BytesIO(b"x" * 5000),
            declared_length=None,
            content_type="text/plain",
            filename=None,
        )

    assert raised.value.errcode == "M_TOO_LARGE"
    assert raised.value.status == 413
    assert stored_files(media_root) == []


def test_quota_refuses_uploads_beyond_it(
    api: MatrixTestClient, alice: Persona, bob: Persona, settings: Any
) -> None:
    settings.MEDIA_USER_QUOTA = 100
    assert upload(api, alice, b"x" * 60, "text/plain").status == 200

    over = upload(api, alice, b"x" * 60, "text/plain")

    assert over.status == 403
    assert over.errcode == "M_FORBIDDEN"
    assert upload(api, bob, b"x" * 60, "text/plain").status == 200


@pytest.mark.parametrize("media_id", ["doesNotExist123", "AAAAAAAAAAAAAAAAAAAAAAAA"])
def test_unknown_media_is_not_found(api: MatrixTestClient, alice: Persona, media_id: str) -> None:
    got = download(api, alice, media_id)

    assert got.status == 404
    assert got.errcode == "M_NOT_FOUND"


@pytest.mark.parametrize("media_id", ["..", "a.b", "%2E%2E", "abc%00", "ab%20cd", "x" * 65])
def test_media_ids_outside_the_spec_alphabet_are_not_found(
    api: MatrixTestClient, alice: Persona, media_id: str
) -> None:
    got = download(api, alice, media_id)

    assert got.status in (400, 404)
    assert got.errcode in ("M_NOT_FOUND", "M_INVALID_PARAM", "M_UNRECOGNIZED")


def test_a_file_name_with_dot_dots_is_only_a_name(
    api: MatrixTestClient, alice: Persona, media_root: Path, tmp_path: Path
) -> None:
    before = {p for p in tmp_path.parent.rglob("*") if p.is_file()}

    media_id = media_id_of(upload(api, alice, b"data", "text/plain", filename="../../evil.txt"))

    files = stored_files(media_root)
    assert len(files) == 1
    assert files[0].name == media_id
    assert all(media_root in p.parents for p in files)
    created = {p for p in tmp_path.parent.rglob("*") if p.is_file()} - before
    assert {p for p in created if media_root not in p.parents and p.suffix != ".sqlite3"} == set()
    got = download(api, alice, media_id)
    assert got.body == b"data"
    # The spec: the download names the file exactly as uploaded (RFC 8187-encoded).
    assert got.headers["Content-Disposition"] == "inline; filename*=utf-8''..%2F..%2Fevil.txt"


@pytest.mark.parametrize("filename", ["a%00b.txt", "a%0d%0aSet-Cookie: x.txt", "tab%09.txt"])
def test_file_names_with_control_characters_are_refused(
    api: MatrixTestClient, alice: Persona, filename: str, media_root: Path
) -> None:
    got = api.request(
        "POST",
        f"{MEDIA_V3}/upload?filename={filename}",
        raw=b"data",
        content_type="text/plain",
        token=alice.access_token,
    )

    assert got.status == 400
    assert got.errcode == "M_INVALID_PARAM"
    assert LocalMedia.objects.count() == 0
    assert stored_files(media_root) == []


def test_quoted_and_non_ascii_file_names_are_encoded(
    api: MatrixTestClient, alice: Persona
) -> None:
    media_id = media_id_of(upload(api, alice, b"d", "text/plain", filename='say "hi"; x=1.txt'))

    got = download(api, alice, media_id)

    assert got.headers["Content-Disposition"] == (
        "inline; filename*=utf-8''say%20%22hi%22%3B%20x%3D1.txt"
    )


class _DroppedConnection(io.RawIOBase):
    """A request body whose client goes away after ``sent`` bytes."""

    def __init__(self, sent: int) -> None:
        self.left = sent

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("connection reset by peer")
        n = min(self.left, size if size > 0 else self.left, 4096)
        self.left -= n
        return b"x" * n


def test_an_upload_that_stops_halfway_leaves_nothing(
    settings: Any, media_root: Path, tmp_path: Path, db: None
) -> None:
    with pytest.raises(OSError, match="reset"):
        uploads.do_upload(
            "@alice:localhost:8008",
            _DroppedConnection(50_000),
            declared_length=100_000,
            content_type="text/plain",
            filename=None,
        )

    assert LocalMedia.objects.count() == 0
    assert stored_files(media_root) == []
    assert list((tmp_path / "media_tmp").iterdir()) == []


def test_a_body_shorter_than_its_content_length_is_refused(
    settings: Any, media_root: Path, db: None
) -> None:
    with pytest.raises(MatrixError) as raised:
        uploads.do_upload(
            "@alice:localhost:8008",
            io.BytesIO(b"x" * 10),
            declared_length=20,
            content_type="text/plain",
            filename=None,
        )

    assert raised.value.status == 400
    assert LocalMedia.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_trailing_slash_means_no_file_name_override(
    api: MatrixTestClient, alice: Persona
) -> None:
    media_id = media_id_of(upload(api, alice, b"hello", "text/plain", filename="a.txt"))

    got = download(api, alice, media_id, "/")

    assert got.status == 200
    assert got.headers["Content-Disposition"] == 'inline; filename="a.txt"'


# Served under ASGI, the async stream is read as such; the test client reads it synchronously.
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_large_files_are_streamed_whole(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    data = os.urandom(serving.STREAM_ABOVE_BYTES + 12345)
    media_id = media_id_of(upload(api, alice, data, "video/mp4", filename="clip.mp4"))

    response = api.client.get(
        f"{MEDIA_V1}/download/{SERVER}/{media_id}",
        headers={"Authorization": f"Bearer {alice.access_token}"},
    )

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Disposition"] == 'inline; filename="clip.mp4"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response) == data
