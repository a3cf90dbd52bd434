"""Asynchronous uploads: POST /_matrix/media/v1/create, then PUT /_matrix/media/v3/upload."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from media import selectors
from media.models import LocalMedia
from media.services import uploads
from media.tasks import purge_expired_media_state
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import MEDIA_V1, MEDIA_V3, stored_files

SERVER = "localhost:8008"


def create(api: MatrixTestClient, who: Persona) -> str:
    got = api.post("/_matrix/media/v1/create", token=who.access_token)
    assert got.status == 200, got.body
    assert got.body["unused_expires_at"] > 0
    return str(got.body["content_uri"].rsplit("/", 1)[1])


def put(
    api: MatrixTestClient, who: Persona, media_id: str, data: bytes, server: str = SERVER
) -> Any:
    return api.request(
        "PUT",
        f"{MEDIA_V3}/upload/{server}/{media_id}?filename=notes.txt",
        raw=data,
        content_type="text/plain",
        token=who.access_token,
    )


def test_create_then_upload_then_download(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    media_id = create(api, alice)

    done = put(api, alice, media_id, b"later")

    assert done.status == 200
    assert done.body == {}
    got = api.get(f"{MEDIA_V1}/download/{SERVER}/{media_id}", token=bob.access_token)
    assert got.status == 200
    assert got.body == b"later"
    assert got.headers["Content-Disposition"] == 'inline; filename="notes.txt"'


def test_download_before_the_upload_is_not_yet_uploaded(
    api: MatrixTestClient, alice: Persona
) -> None:
    media_id = create(api, alice)

    path = f"{MEDIA_V1}/download/{SERVER}/{media_id}?timeout_ms=0"
    got = api.get(path, token=alice.access_token)

    assert got.status == 504
    assert got.errcode == "M_NOT_YET_UPLOADED"


def test_only_the_creator_may_upload(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    media_id = create(api, alice)

    got = put(api, bob, media_id, b"not yours")

    assert got.status == 403
    assert got.errcode == "M_FORBIDDEN"


def test_uploading_twice_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    media_id = create(api, alice)
    assert put(api, alice, media_id, b"first").status == 200

    again = put(api, alice, media_id, b"second")

    assert again.status == 409
    assert again.errcode == "M_CANNOT_OVERWRITE_MEDIA"
    got = api.get(f"{MEDIA_V1}/download/{SERVER}/{media_id}", token=alice.access_token)
    assert got.body == b"first"


@pytest.mark.parametrize(("server", "media_id"), [(SERVER, "neverCreated"), ("other.org", "x")])
def test_unknown_ids_are_not_found(
    api: MatrixTestClient, alice: Persona, server: str, media_id: str
) -> None:
    got = put(api, alice, media_id, b"data", server=server)

    assert got.status == 404
    assert got.errcode == "M_NOT_FOUND"


def test_expired_ids_are_not_found(api: MatrixTestClient, alice: Persona) -> None:
    media_id = create(api, alice)
    LocalMedia.objects.filter(media_id=media_id).update(unused_expires_ts=1)

    got = put(api, alice, media_id, b"too late")

    assert got.status == 404
    assert got.errcode == "M_NOT_FOUND"


def test_pending_uploads_are_limited(api: MatrixTestClient, alice: Persona) -> None:
    for _ in range(uploads.MAX_PENDING_UPLOADS):
        create(api, alice)

    got = api.post("/_matrix/media/v1/create", token=alice.access_token)

    assert got.status == 429
    assert got.errcode == "M_LIMIT_EXCEEDED"


def test_a_put_that_stops_halfway_leaves_the_id_pending(
    api: MatrixTestClient, alice: Persona, media_root: Path
) -> None:
    media_id = create(api, alice)

    class Dropped(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            if self.sent >= 8192:
                raise OSError("connection reset by peer")
            self.sent += 4096
            return b"x" * 4096

    with pytest.raises(OSError, match="reset"):
        uploads.do_upload_to_media_id(
            alice.user_id,
            SERVER,
            media_id,
            Dropped(),
            declared_length=100_000,
            content_type="text/plain",
            filename=None,
        )

    assert stored_files(media_root) == []
    path = f"{MEDIA_V1}/download/{SERVER}/{media_id}?timeout_ms=0"
    got = api.get(path, token=alice.access_token)
    assert got.errcode == "M_NOT_YET_UPLOADED"
    # The client may try again.
    assert put(api, alice, media_id, b"complete").status == 200


def test_a_download_waits_for_a_pending_upload(
    api: MatrixTestClient, alice: Persona, bob: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = create(api, alice)
    waits: list[float] = []

    def upload_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            assert put(api, alice, media_id, b"arrived").status == 200

    monkeypatch.setattr(selectors, "_sleep", upload_meanwhile)

    got = api.get(
        f"{MEDIA_V1}/download/{SERVER}/{media_id}?timeout_ms=5000", token=bob.access_token
    )

    assert got.status == 200
    assert got.body == b"arrived"
    assert len(waits) == 2


def test_the_wait_is_bounded_by_timeout_ms(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = create(api, alice)
    clock = [0.0]
    monkeypatch.setattr(selectors, "_monotonic", lambda: clock[0])

    def advance(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(selectors, "_sleep", advance)

    got = api.get(
        f"{MEDIA_V1}/download/{SERVER}/{media_id}?timeout_ms=1200", token=alice.access_token
    )

    assert (got.status, got.errcode) == (504, "M_NOT_YET_UPLOADED")
    assert clock[0] == 1.5


def test_expired_unused_ids_are_purged(api: MatrixTestClient, alice: Persona) -> None:
    expired = create(api, alice)
    pending = create(api, alice)
    done = create(api, alice)
    assert put(api, alice, done, b"data").status == 200
    LocalMedia.objects.filter(media_id__in=[expired, done]).update(unused_expires_ts=1)

    assert purge_expired_media_state.delay().get()["unused_media_ids"] == 1

    assert set(LocalMedia.objects.values_list("media_id", flat=True)) == {pending, done}
