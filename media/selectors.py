"""Reads of the media repository, with the serving rules applied here, once.

Served only: local media (other servers' media is fetched and cached by
services/remote_media.py), uploaded, not quarantined, and on the deprecated
unauthenticated endpoints only media uploaded before the freeze (``authenticated_only``
unset).
"""

from __future__ import annotations

import time

from django import db
from django.db.models import Sum

from accounts.clock import now_ms
from media import ids
from media.models import LocalMedia, RemoteMedia, RemoteThumbnail
from protocol.errors import MatrixError

# The spec's default wait for content that is not uploaded yet, and our maximum.
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 20_000
_POLL_S = 0.5
_sleep = time.sleep
_monotonic = time.monotonic


def _not_found() -> MatrixError:
    return MatrixError("M_NOT_FOUND", "Unknown media")


def _lookup(media_id: str) -> LocalMedia | None:
    return LocalMedia.objects.filter(media_id=media_id).first()


def release_connections() -> None:
    """Give the database connection back while waiting, so that waiting downloads do not
    hold PostgreSQL pool slots (as /sync does between long-poll builds)."""
    for connection in db.connections.all(initialized_only=True):
        # Never inside a transaction (tests wrap each test in one).
        if not connection.in_atomic_block:
            connection.close()


def servable_media(
    server_name: str, media_id: str, *, timeout_ms: int = 0, legacy: bool = False
) -> LocalMedia:
    """The media an mxc:// URI names, once it is uploaded; waits up to ``timeout_ms``
    for a pending upload, then raises 504 M_NOT_YET_UPLOADED."""
    ids.check_media_id(media_id)
    if not ids.is_local(server_name):
        raise _not_found()
    deadline = _monotonic() + min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
    while True:
        media = _lookup(media_id)
        if media is None or media.is_quarantined:
            raise _not_found()
        if legacy and media.authenticated_only:
            # The freeze: new media is only served through the authenticated endpoints.
            raise _not_found()
        if media.is_uploaded:
            return media
        if (media.unused_expires_ts or 0) <= now_ms():
            raise _not_found()
        if _monotonic() >= deadline:
            raise MatrixError(
                "M_NOT_YET_UPLOADED", "Content has not yet been uploaded", status=504
            )
        release_connections()
        _sleep(_POLL_S)


def bytes_used_by(user_id: str) -> int:
    total = LocalMedia.objects.filter(user_id=user_id).aggregate(total=Sum("size"))["total"]
    return int(total or 0)


def remote_cache_size() -> tuple[int, int]:
    """(items of other servers' media cached here, bytes they take with their thumbnails)."""
    cached = RemoteMedia.objects.filter(fetched_ts__isnull=False)
    originals = cached.aggregate(total=Sum("size"))["total"] or 0
    thumbs = RemoteThumbnail.objects.aggregate(total=Sum("size"))["total"] or 0
    return cached.count(), int(originals) + int(thumbs)
