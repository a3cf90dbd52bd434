"""Thumbnails: the spec's sizes made at upload, others on demand; each made once, kept.

A request is answered, in order of preference, with the original (when it is no larger
than asked, and a type thumbnails may have), an existing thumbnail at least as large as
the target (same method and animation, for "crop" the same aspect ratio), or a new
thumbnail of exactly the target size, stored for next time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from media import images
from media.models import LocalMedia, Thumbnail
from media.storage import media_storage, thumbnail_name
from protocol.errors import MatrixError

logger = logging.getLogger(__name__)

METHODS = ("crop", "scale")
# Content types a thumbnail response may have (authed-content-repo.yaml), so an original
# of one of these types may stand in for its own thumbnail.
THUMBNAIL_CONTENT_TYPES = ("image/jpeg", "image/png", "image/apng", "image/gif", "image/webp")


# Thumbnails kept per media. Every other size is made for the request and not kept, so
# asking for many sizes costs CPU time but cannot fill the disk.
MAX_KEPT_PER_MEDIA = 32


@dataclass(frozen=True)
class ThumbnailFile:
    """What to send: a file in the media storage, or bytes made for this request only."""

    storage_name: str
    content_type: str
    size: int
    data: bytes | None = None


class ThumbnailSource(Protocol):
    """What thumbnailing needs of an original: local media, or cached remote media."""

    @property
    def media_id(self) -> str: ...
    @property
    def storage_name(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...


def cannot_thumbnail() -> MatrixError:
    return MatrixError("M_UNKNOWN", "Cannot generate thumbnails for the requested content")


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _source_is_animated(media: ThumbnailSource) -> bool:
    with media_storage().open(media.storage_name, "rb") as fp:
        info = images.probe(fp)
    return bool(info and info.animated)


def _existing(media: LocalMedia, size: tuple[int, int], method: str, animated: bool):  # type: ignore[no-untyped-def]
    width, height = size
    candidates = Thumbnail.objects.filter(
        media=media, method=method, animated=animated, width__gte=width, height__gte=height
    ).order_by("width", "height")
    for thumb in candidates:
        if method == "scale" or thumb.width * height == thumb.height * width:
            return thumb
    return None


def _render(
    media: ThumbnailSource, size: tuple[int, int], method: str, animated: bool
) -> images.Rendered:
    with media_storage().open(media.storage_name, "rb") as fp:
        try:
            return images.render(fp, size, method, animated=animated)
        except (OSError, ValueError, SyntaxError) as exc:
            logger.info("Cannot thumbnail %s: %s", media.media_id, exc)
            raise cannot_thumbnail() from None


def _generate(media: LocalMedia, size: tuple[int, int], method: str, animated: bool) -> Thumbnail:
    storage = media_storage()
    rendered = _render(media, size, method, animated)
    name = thumbnail_name(
        media.media_id,
        size[0],
        size[1],
        method + ("-animated" if animated else ""),
        rendered.extension,
    )
    stored = storage.save(name, ContentFile(rendered.data))
    try:
        with transaction.atomic():
            return Thumbnail.objects.create(
                media=media,
                width=size[0],
                height=size[1],
                method=method,
                animated=animated,
                content_type=rendered.content_type,
                size=len(rendered.data),
                storage_name=stored,
            )
    except IntegrityError:
        # Made at the same moment by another request: keep theirs.
        storage.delete(stored)
        return Thumbnail.objects.get(
            media=media, width=size[0], height=size[1], method=method, animated=animated
        )


def check_thumbnailable(media: ThumbnailSource) -> None:
    if media.width is None or media.height is None:
        raise cannot_thumbnail()
    if media.width * media.height > images.MAX_SOURCE_PIXELS:
        raise MatrixError("M_TOO_LARGE", "Content is too large to thumbnail", status=413)


def _plan(
    media: ThumbnailSource, width: int, height: int, method: str, animated: bool
) -> tuple[ThumbnailFile | None, tuple[int, int], bool]:
    """How to answer a request: (the original, when it stands in for its thumbnail, else
    None; the size to render; whether to animate)."""
    check_thumbnailable(media)
    assert media.width is not None
    assert media.height is not None
    # "animated=true" for a source that cannot be animated means "false" (the spec).
    animated = animated and _source_is_animated(media)
    size = images.target_size(media.width, media.height, width, height, method)
    if size is None:
        if animated or (
            _base_type(media.content_type) in THUMBNAIL_CONTENT_TYPES
            and not _source_is_animated(media)
        ):
            original = ThumbnailFile(
                media.storage_name, _base_type(media.content_type), media.size or 0
            )
            return original, (media.width, media.height), animated
        # A static rendering of the whole image (an animated GIF when no animation is
        # wanted, or a type thumbnails do not come in, like BMP).
        size = (media.width, media.height)
    return None, size, animated


def render_for_request(
    media: ThumbnailSource, width: int, height: int, method: str, *, animated: bool
) -> ThumbnailFile:
    """A thumbnail for a request, made now and not stored (or the original, when it
    stands in for its thumbnail); the caller decides whether to keep it."""
    original, size, animated = _plan(media, width, height, method, animated)
    if original is not None:
        return original
    rendered = _render(media, size, method, animated)
    return ThumbnailFile("", rendered.content_type, len(rendered.data), rendered.data)


def do_get_thumbnail(
    media: LocalMedia, width: int, height: int, method: str, *, animated: bool
) -> ThumbnailFile:
    """The thumbnail to serve for a request, generating and storing it if needed."""
    original, size, animated = _plan(media, width, height, method, animated)
    if original is not None:
        return original
    thumb = _existing(media, size, method, animated)
    if thumb is None:
        if Thumbnail.objects.filter(media=media).count() >= MAX_KEPT_PER_MEDIA:
            rendered = _render(media, size, method, animated)
            return ThumbnailFile("", rendered.content_type, len(rendered.data), rendered.data)
        thumb = _generate(media, size, method, animated)
    return ThumbnailFile(thumb.storage_name, thumb.content_type, thumb.size)


def do_pregenerate_thumbnails(media: LocalMedia) -> int:
    """Make the spec's recommended thumbnails of an image; return how many were made."""
    try:
        check_thumbnailable(media)
    except MatrixError:
        return 0
    assert media.width is not None
    assert media.height is not None
    made = 0
    for width, height, method in images.PREGENERATED:
        size = images.target_size(media.width, media.height, width, height, method)
        if size is None or _existing(media, size, method, False) is not None:
            continue
        try:
            _generate(media, size, method, False)
        except MatrixError:
            return made
        made += 1
    return made
