"""Other servers' media: fetched over federation once, kept here, served like ours.

Client-Server API, "Content repository": a client asks its own server for any
``mxc://`` URI; for another server's media, its server fetches it (Server-Server API,
"Content Repository"; media/remote_fetch.py) and keeps a copy (models.RemoteMedia).

- Fetched once: the first request claims the media by making its row, fetches, stores
  the file, then marks the row fetched; concurrent requests (any process) wait for that,
  polling the row. A claim older than a fetch can take is taken over, so a fetcher that
  died blocks nothing. A failure is remembered for FAILURE_TTL_MS, and given to those
  waiting and to requests in that window, so a missing or unreachable media is not
  asked for by every one of them.
- The rules of local media: TRELLIS_MAX_UPLOAD_SIZE bounds what is fetched (larger is
  ``502 M_TOO_LARGE``, the spec's answer for content too large to serve), quarantined
  media is served to nobody, and the deprecated unauthenticated endpoints serve only
  what was fetched while they were not frozen (and fetch only while not frozen).
- Errors: missing at its server ``404 M_NOT_FOUND``, its server unreachable or
  answering nonsense ``502``, still being uploaded there ``504 M_NOT_YET_UPLOADED``.
- Thumbnails: the other server's thumbnail for the same request, kept; if it has none
  to give, one made here from the cached original, kept likewise.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from accounts.clock import now_ms
from media import ids, images, remote_fetch, selectors
from media.models import RemoteMedia, RemoteThumbnail
from media.services import thumbnails
from media.services.moderation import delete_files
from media.services.uploads import check_filename, clean_content_type
from media.storage import media_storage, remote_content_name, remote_thumbnail_name
from protocol.errors import MatrixError
from protocol.identifiers import is_valid_server_name
from protocol.media_multipart import disposition_filename

logger = logging.getLogger(__name__)

# A claim this old belongs to a fetch that is over (it would have timed out).
CLAIM_STALE_MS = int(remote_fetch.FETCH_TIMEOUT_S * 1000) + 30_000
FAILURE_TTL_MS = 10_000
# A remote thumbnail costs this long at most before one is made here instead.
THUMBNAIL_FETCH_TIMEOUT_S = 20.0
_POLL_S = 0.25
_sleep = time.sleep
_monotonic = time.monotonic

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/apng": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}


def _not_found() -> MatrixError:
    return MatrixError("M_NOT_FOUND", "Unknown media")


def error_for(kind: str) -> MatrixError:
    """What our client is told when the other server did not give us the media."""
    if kind == remote_fetch.NOT_FOUND:
        return _not_found()
    if kind == remote_fetch.TOO_LARGE:
        return MatrixError("M_TOO_LARGE", "Content is too large to serve", status=502)
    if kind == remote_fetch.NOT_YET_UPLOADED:
        return MatrixError("M_NOT_YET_UPLOADED", "Content has not yet been uploaded", status=504)
    return MatrixError("M_UNKNOWN", "Could not fetch the media from its server", status=502)


def _claim(origin: str, media_id: str, media: RemoteMedia | None) -> RemoteMedia | None:
    """The row, claimed for a fetch by this request, or None if someone else fetches."""
    now = now_ms()
    authenticated_only = not settings.MEDIA_LEGACY_UNAUTHENTICATED
    if media is None:
        try:
            with transaction.atomic():
                return RemoteMedia.objects.create(
                    origin=origin,
                    media_id=media_id,
                    file_id=ids.new_media_id(),
                    created_ts=now,
                    claimed_ts=now,
                    authenticated_only=authenticated_only,
                )
        except IntegrityError:
            return None  # Made by another request just now.
    if media.failed_ts is None and media.claimed_ts > now - CLAIM_STALE_MS:
        return None  # Being fetched.
    taken = RemoteMedia.objects.filter(
        pk=media.pk,
        claimed_ts=media.claimed_ts,
        fetched_ts__isnull=True,
        quarantined_by__isnull=True,
    ).update(claimed_ts=now, failed_ts=None, failure="", authenticated_only=authenticated_only)
    if not taken:
        return None
    media.claimed_ts, media.failed_ts, media.failure = now, None, ""
    media.authenticated_only = authenticated_only
    return media


def _ours(media: RemoteMedia) -> QuerySet[RemoteMedia]:
    """The row, as long as this request's claim on it holds."""
    return RemoteMedia.objects.filter(
        pk=media.pk,
        claimed_ts=media.claimed_ts,
        fetched_ts__isnull=True,
        quarantined_by__isnull=True,
    )


def _filename(content_disposition: str) -> str | None:
    try:
        return check_filename(disposition_filename(content_disposition))
    except MatrixError:
        return None  # Not a name we would accept from our own users either.


def _fetch_and_store(media: RemoteMedia, timeout_ms: int) -> RemoteMedia | None:
    """Fetch claimed media and record it; None if the claim was lost meanwhile (taken
    over, or the media quarantined or purged)."""
    try:
        fetched = remote_fetch.download(media.origin, media.media_id, timeout_ms=timeout_ms)
    except remote_fetch.RemoteMediaError as exc:
        logger.info("Could not fetch mxc://%s/%s: %s", media.origin, media.media_id, exc)
        if exc.kind == remote_fetch.NOT_YET_UPLOADED:
            _ours(media).delete()  # Worth asking again at once.
        else:
            _ours(media).update(failed_ts=now_ms(), failure=exc.kind)
        raise error_for(exc.kind) from None
    except BaseException:
        _ours(media).delete()
        raise
    data = fetched.data
    info = images.probe(io.BytesIO(data))
    stored = media_storage().save(remote_content_name(media.file_id), ContentFile(data))
    try:
        recorded = _ours(media).update(
            content_type=clean_content_type(fetched.content_type),
            upload_name=_filename(fetched.content_disposition),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            storage_name=stored,
            fetched_ts=now_ms(),
            width=info.width if info else None,
            height=info.height if info else None,
        )
    except BaseException:
        delete_files([stored])
        raise
    if not recorded:
        delete_files([stored])
        return None
    media.refresh_from_db()
    return media


def do_get_remote_media(
    origin: str,
    media_id: str,
    *,
    timeout_ms: int = selectors.DEFAULT_TIMEOUT_MS,
    legacy: bool = False,
    allow_fetch: bool = True,
) -> RemoteMedia:
    """The cached copy of ``mxc://<origin>/<media_id>``, fetched first if needed.

    ``legacy``: for the deprecated unauthenticated endpoints (the freeze applies).
    ``allow_fetch``: False serves only what is cached (``allow_remote=false``).
    """
    ids.check_media_id(media_id)
    if not is_valid_server_name(origin):
        raise _not_found()
    if legacy and not settings.MEDIA_LEGACY_UNAUTHENTICATED:
        allow_fetch = False  # Frozen: nothing new through the unauthenticated endpoints.
    deadline = _monotonic() + CLAIM_STALE_MS / 1000
    while True:
        media = RemoteMedia.objects.filter(origin=origin, media_id=media_id).first()
        if media is not None:
            if media.is_quarantined:
                raise _not_found()
            if media.is_cached:
                if legacy and media.authenticated_only:
                    raise _not_found()
                return media
            if media.failed_ts is not None and media.failed_ts > now_ms() - FAILURE_TTL_MS:
                raise error_for(media.failure)
        if not allow_fetch:
            raise _not_found()
        claimed = _claim(origin, media_id, media)
        if claimed is not None:
            stored = _fetch_and_store(claimed, timeout_ms)
            if stored is not None:
                return stored
        elif _monotonic() >= deadline:
            raise error_for(remote_fetch.UNAVAILABLE)
        else:
            selectors.release_connections()
            _sleep(_POLL_S)


def _their_thumbnail(
    media: RemoteMedia, width: int, height: int, method: str, animated: bool, timeout_ms: int
) -> thumbnails.ThumbnailFile | None:
    """The other server's thumbnail for this request, if it gives one that is an image
    of a thumbnail's type."""
    try:
        fetched = remote_fetch.thumbnail(
            media.origin,
            media.media_id,
            width=width,
            height=height,
            method=method,
            animated=animated,
            timeout_ms=timeout_ms,
            timeout_s=THUMBNAIL_FETCH_TIMEOUT_S,
        )
    except remote_fetch.RemoteMediaError as exc:
        logger.info("No thumbnail of mxc://%s/%s from it: %s", media.origin, media.media_id, exc)
        return None
    content_type = clean_content_type(fetched.content_type).split(";", 1)[0].strip().lower()
    if content_type not in thumbnails.THUMBNAIL_CONTENT_TYPES:
        return None
    if images.probe(io.BytesIO(fetched.data)) is None:
        return None
    return thumbnails.ThumbnailFile("", content_type, len(fetched.data), fetched.data)


def _keep(
    media: RemoteMedia,
    request: tuple[int, int, str, bool],
    made: thumbnails.ThumbnailFile,
) -> thumbnails.ThumbnailFile:
    assert made.data is not None
    width, height, method, animated = request
    name = remote_thumbnail_name(
        media.file_id,
        width,
        height,
        method + ("-animated" if animated else ""),
        _EXTENSIONS.get(made.content_type, "bin"),
    )
    stored = media_storage().save(name, ContentFile(made.data))
    try:
        with transaction.atomic():
            thumb = RemoteThumbnail.objects.create(
                media=media,
                width=width,
                height=height,
                method=method,
                animated=animated,
                content_type=made.content_type,
                size=len(made.data),
                storage_name=stored,
            )
    except IntegrityError:
        # Kept at the same moment by another request: keep theirs.
        delete_files([stored])
        thumb = RemoteThumbnail.objects.get(
            media=media, width=width, height=height, method=method, animated=animated
        )
    except BaseException:
        delete_files([stored])
        raise
    return thumbnails.ThumbnailFile(thumb.storage_name, thumb.content_type, thumb.size)


def do_get_remote_thumbnail(
    media: RemoteMedia,
    width: int,
    height: int,
    method: str,
    *,
    animated: bool,
    timeout_ms: int = selectors.DEFAULT_TIMEOUT_MS,
) -> thumbnails.ThumbnailFile:
    """The thumbnail to serve of cached remote media: kept from an earlier request,
    else the other server's, else made here from the original; kept for next time
    (up to thumbnails.MAX_KEPT_PER_MEDIA per media)."""
    kept = RemoteThumbnail.objects.filter(
        media=media, width=width, height=height, method=method, animated=animated
    ).first()
    if kept is not None:
        return thumbnails.ThumbnailFile(kept.storage_name, kept.content_type, kept.size)
    made = _their_thumbnail(media, width, height, method, animated, timeout_ms)
    if made is None:
        made = thumbnails.render_for_request(media, width, height, method, animated=animated)
        if made.data is None:
            return made  # The original stands in for its thumbnail.
    if RemoteThumbnail.objects.filter(media=media).count() >= thumbnails.MAX_KEPT_PER_MEDIA:
        return made
    return _keep(media, (width, height, method, animated), made)


def do_purge_remote_media(media: QuerySet[RemoteMedia]) -> int:
    """Delete the cached files (and thumbnails) of these items; return how many items.

    Items not quarantined are forgotten (asked for again, they are fetched again);
    quarantined ones keep their row, without a file, so they stay refused.
    """
    with transaction.atomic():
        pks = list(media.values_list("pk", flat=True))
        rows = RemoteMedia.objects.filter(pk__in=pks)
        names = [n for n in rows.values_list("storage_name", flat=True) if n]
        names += list(
            RemoteThumbnail.objects.filter(media__pk__in=pks).values_list(
                "storage_name", flat=True
            )
        )
        RemoteThumbnail.objects.filter(media__pk__in=pks).delete()
        # No fetch under way (claimed_ts 0): released from quarantine, it is fetched anew.
        rows.filter(quarantined_by__isnull=False).update(
            storage_name="", fetched_ts=None, size=None, claimed_ts=0
        )
        rows.filter(quarantined_by__isnull=True).delete()
        transaction.on_commit(lambda: delete_files(names))
    return len(pks)


def do_forget_failed_fetches() -> int:
    """Delete the rows of fetches that failed, or were abandoned, long enough ago."""
    now = now_ms()
    count, _ = (
        RemoteMedia.objects.filter(fetched_ts__isnull=True, quarantined_by__isnull=True)
        .filter(Q(claimed_ts__lte=now - CLAIM_STALE_MS) | Q(failed_ts__lte=now - FAILURE_TTL_MS))
        .delete()
    )
    return count
