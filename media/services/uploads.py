"""Uploading content: POST /media/v3/upload, POST /media/v1/create + PUT /media/v3/upload.

An upload is read in chunks into a temporary file beside the media storage, hashed and
counted as it arrives, and refused (M_TOO_LARGE) as soon as it passes the limit. Only a
complete file is moved into the storage, and the row that makes it servable is written
after that, in one transaction: an upload that stops halfway leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.db import transaction

from accounts.clock import now_ms
from media import ids, images, selectors
from media.models import LocalMedia
from media.storage import content_name, media_storage
from protocol.errors import MatrixError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
# POST /media/v1/create: IDs expire unused after 24 hours (the spec's recommendation),
# and a user may hold this many unused ones at a time.
UNUSED_ID_LIFETIME_MS = 24 * 60 * 60 * 1000
MAX_PENDING_UPLOADS = 10
_CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[ -~]*)?$")


def too_large() -> MatrixError:
    return MatrixError(
        "M_TOO_LARGE", f"Uploads are limited to {settings.MAX_UPLOAD_SIZE} bytes", status=413
    )


def clean_content_type(value: str | None) -> str:
    """The upload's Content-Type if it is one, else application/octet-stream (the spec's
    default when none is given)."""
    value = (value or "").strip()
    if not value or len(value) > 255 or not _CONTENT_TYPE_RE.match(value):
        return "application/octet-stream"
    return value


def check_filename(filename: str | None) -> str | None:
    """The ``filename`` query parameter, kept exactly (the download's Content-Disposition
    must repeat it); it is never used as a path. Control characters are refused."""
    if filename is None:
        return None
    if len(filename) > 1024:
        raise MatrixError("M_INVALID_PARAM", "filename is too long")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in filename):
        raise MatrixError("M_INVALID_PARAM", "filename must not contain control characters")
    return filename


def _check_quota(user_id: str, size: int) -> None:
    quota = settings.MEDIA_USER_QUOTA
    if quota <= 0:
        return
    if selectors.bytes_used_by(user_id) + size > quota:
        raise MatrixError("M_FORBIDDEN", "You have used up your media storage quota")


class _TempFile(File):  # type: ignore[type-arg]
    """A finished upload on disk; the file system storage moves it into place by rename."""

    def temporary_file_path(self) -> str:
        return str(self.name)


@dataclass
class Received:
    path: Path
    size: int
    sha256: str


def _temp_dir() -> Path:
    path = Path(settings.DATA_DIR) / "media_tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def receive(stream: IO[bytes], declared_length: int | None) -> Iterator[Received]:
    """Copy a request body into a temporary file, enforcing the size limit while reading.

    The file is removed on the way out unless it was moved into the storage.
    """
    limit = settings.MAX_UPLOAD_SIZE
    if declared_length is not None and declared_length > limit:
        raise too_large()
    fd, name = tempfile.mkstemp(prefix="upload-", dir=_temp_dir())
    path = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK_BYTES)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise too_large()
                digest.update(chunk)
                out.write(chunk)
        if declared_length is not None and size != declared_length:
            raise MatrixError(
                "M_UNKNOWN", "The upload ended before its Content-Length", status=400
            )
        yield Received(path, size, digest.hexdigest())
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _store(received: Received, media_id: str) -> str:
    """Move a received file into the media storage; return its storage name."""
    with received.path.open("rb") as fp:
        return media_storage().save(content_name(media_id), _TempFile(fp, name=str(received.path)))


def _discard_stored(name: str) -> None:
    with contextlib.suppress(Exception):
        media_storage().delete(name)


def _image_fields(received: Received) -> dict[str, Any]:
    with received.path.open("rb") as fp:
        info = images.probe(fp)
    if info is None:
        return {"width": None, "height": None}
    return {"width": info.width, "height": info.height}


def _after_upload(media: LocalMedia) -> None:
    if media.width is not None:
        from media.tasks import pregenerate_thumbnails

        transaction.on_commit(lambda: pregenerate_thumbnails.delay(media.pk))


def do_upload(
    user_id: str,
    stream: IO[bytes],
    *,
    declared_length: int | None,
    content_type: str | None,
    filename: str | None,
) -> LocalMedia:
    """POST /media/v3/upload: store new content for ``user_id``; return its record."""
    filename = check_filename(filename)
    if declared_length is not None:
        _check_quota(user_id, declared_length)
    with receive(stream, declared_length) as received:
        _check_quota(user_id, received.size)
        return _save_new(received, user_id, content_type, filename, thumbnails=True)


def _save_new(
    received: Received,
    user_id: str,
    content_type: str | None,
    filename: str | None,
    *,
    thumbnails: bool,
) -> LocalMedia:
    """Put received content in storage under a new media ID, then write the row that
    makes it servable; if the row cannot be written, the stored file goes again.
    ``thumbnails``: have the worker make the recommended sizes after the commit."""
    media_id = ids.new_media_id()
    fields = _image_fields(received)
    stored = _store(received, media_id)
    try:
        with transaction.atomic():
            now = now_ms()
            media = LocalMedia.objects.create(
                media_id=media_id,
                user_id=user_id,
                content_type=clean_content_type(content_type),
                upload_name=filename,
                size=received.size,
                sha256=received.sha256,
                storage_name=stored,
                created_ts=now,
                uploaded_ts=now,
                authenticated_only=not settings.MEDIA_LEGACY_UNAUTHENTICATED,
                **fields,
            )
            if thumbnails:
                _after_upload(media)
    except BaseException:
        _discard_stored(stored)
        raise
    return media


def do_create_media_id(user_id: str) -> LocalMedia:
    """POST /media/v1/create: reserve an mxc:// URI for a later PUT."""
    now = now_ms()
    pending = LocalMedia.objects.filter(
        user_id=user_id, uploaded_ts__isnull=True, unused_expires_ts__gt=now
    ).count()
    if pending >= MAX_PENDING_UPLOADS:
        raise MatrixError(
            "M_LIMIT_EXCEEDED",
            "Too many pending uploads; finish some first",
            retry_after_ms=60_000,
        )
    return LocalMedia.objects.create(
        media_id=ids.new_media_id(),
        user_id=user_id,
        created_ts=now,
        unused_expires_ts=now + UNUSED_ID_LIFETIME_MS,
        authenticated_only=not settings.MEDIA_LEGACY_UNAUTHENTICATED,
    )


def _pending_media_for(user_id: str, server_name: str, media_id: str) -> LocalMedia:
    """The created-but-not-uploaded media a PUT names, checked for ``user_id``."""
    ids.check_media_id(media_id)
    media = (
        LocalMedia.objects.filter(media_id=media_id).first() if ids.is_local(server_name) else None
    )
    if media is None or (media.uploaded_ts is None and (media.unused_expires_ts or 0) <= now_ms()):
        raise MatrixError("M_NOT_FOUND", "Unknown media ID")
    if media.user_id != user_id:
        raise MatrixError("M_FORBIDDEN", "This media ID was created by another user")
    if media.uploaded_ts is not None:
        raise MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded", status=409)
    return media


def do_upload_to_media_id(
    user_id: str,
    server_name: str,
    media_id: str,
    stream: IO[bytes],
    *,
    declared_length: int | None,
    content_type: str | None,
    filename: str | None,
) -> None:
    """PUT /media/v3/upload/{serverName}/{mediaId}: fill in an ID from /create.

    Takes the media row's lock to record the upload, so of two concurrent PUTs exactly
    one wins and the other gets M_CANNOT_OVERWRITE_MEDIA.
    """
    filename = check_filename(filename)
    _pending_media_for(user_id, server_name, media_id)
    if declared_length is not None:
        _check_quota(user_id, declared_length)
    with receive(stream, declared_length) as received:
        _check_quota(user_id, received.size)
        fields = _image_fields(received)
        # A PUT that lost the race must not replace the winner's file, so the loser
        # stores under a name of its own (the storage never overwrites) and deletes it.
        stored = _store(received, media_id)
        try:
            with transaction.atomic():
                media = LocalMedia.objects.select_for_update().get(media_id=media_id)
                if media.uploaded_ts is not None:
                    raise MatrixError(
                        "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded", status=409
                    )
                media.content_type = clean_content_type(content_type)
                media.upload_name = filename
                media.size = received.size
                media.sha256 = received.sha256
                media.storage_name = stored
                media.uploaded_ts = now_ms()
                media.width = fields["width"]
                media.height = fields["height"]
                media.save()
                _after_upload(media)
        except BaseException:
            _discard_stored(stored)
            raise


def do_store_fetched(data: bytes, content_type: str) -> LocalMedia:
    """Store content the server fetched itself (a URL preview's image), owned by nobody."""
    with receive(io.BytesIO(data), len(data)) as received:
        return _save_new(received, "", content_type, None, thumbnails=False)
