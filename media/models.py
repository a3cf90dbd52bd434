"""The media repository's records: local media, their thumbnails, cached URL previews,
and the cache of other servers' media.

The bytes live in the "media" storage (``settings.STORAGES["media"]``: a directory under
TRELLIS_DATA_DIR by default, S3 or any Django storage by setting); rows here name them.
A row is servable only once ``uploaded_ts`` is set, which happens in the same
transaction that records the fully written file: a half-finished upload is never served.
"""

from __future__ import annotations

from django.db import models


class LocalMedia(models.Model):
    """A piece of content with an ``mxc://<our server>/<media_id>`` URI."""

    # Random, URL-safe (A-Za-z0-9_-), never derived from the content or the uploader.
    media_id = models.CharField(max_length=64, unique=True)
    # The uploader's Matrix user ID; "" for media the server fetched itself (the images of
    # URL previews).
    user_id = models.CharField(max_length=255, db_index=True, blank=True)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    # The ``filename`` the client gave, exactly (only ever used in Content-Disposition).
    upload_name = models.TextField(null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    # The file's name in the media storage ("" until uploaded).
    storage_name = models.CharField(max_length=255, blank=True)
    created_ts = models.BigIntegerField()
    # None: created by POST /media/v1/create and not uploaded yet.
    uploaded_ts = models.BigIntegerField(null=True, blank=True)
    unused_expires_ts = models.BigIntegerField(null=True, blank=True)
    # Not served by the deprecated unauthenticated endpoints (the spec's "freeze"): set for
    # everything uploaded while TRELLIS_MEDIA_LEGACY_UNAUTHENTICATED is off.
    authenticated_only = models.BooleanField(default=True)
    # Image dimensions, when the content is an image Pillow can read.
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Quarantined media is served to nobody. Who quarantined it (an admin's name).
    quarantined_by = models.CharField(max_length=255, null=True, blank=True)
    # Protected: never quarantined by the bulk quarantines (a room's or a user's media),
    # for sticker packs and other shared media (Synapse's ``safe_from_quarantine``).
    safe_from_quarantine = models.BooleanField(default=False)

    class Meta:
        verbose_name = "media"
        verbose_name_plural = "media"
        indexes = [models.Index(fields=["user_id", "uploaded_ts"], name="media_user_uploaded")]

    def __str__(self) -> str:
        return self.media_id

    @property
    def is_uploaded(self) -> bool:
        return self.uploaded_ts is not None

    @property
    def is_quarantined(self) -> bool:
        return self.quarantined_by is not None


class Thumbnail(models.Model):
    """One generated thumbnail of a local image, made once and kept."""

    media = models.ForeignKey(LocalMedia, on_delete=models.CASCADE, related_name="thumbnails")
    # The thumbnail's own dimensions (not the request's).
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    method = models.CharField(max_length=8)
    animated = models.BooleanField(default=False)
    content_type = models.CharField(max_length=64)
    size = models.BigIntegerField()
    storage_name = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["media", "width", "height", "method", "animated"],
                name="thumbnail_unique_size",
            )
        ]

    def __str__(self) -> str:
        return f"{self.media.media_id}: {self.width}x{self.height} {self.method}"


class RemoteMedia(models.Model):
    """Another server's media (``mxc://<origin>/<media_id>``), fetched over federation and
    kept here.

    The row is made when a fetch starts, by the one request that fetches: others asking
    for the same media meanwhile wait for it (``claimed_ts`` says since when; a claim
    older than a fetch can take is taken over). A failed fetch is remembered briefly
    (``failed_ts``, ``failure``) so that those waiting, and requests just after, get the
    same answer instead of asking again. Purging the cache deletes the files; a
    quarantined item keeps its row (without a file) so that it stays refused.
    """

    FAILURE_NOT_FOUND = "not_found"
    FAILURE_TOO_LARGE = "too_large"
    FAILURE_UNAVAILABLE = "unavailable"

    origin = models.CharField(max_length=255)
    media_id = models.CharField(max_length=64)
    # Random, names the files here: nothing the other server chose is used in a path.
    file_id = models.CharField(max_length=64, unique=True)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    # The file name the other server gave (Content-Disposition), if any.
    upload_name = models.TextField(null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    # The file's name in the media storage ("" until fetched, and after a purge).
    storage_name = models.CharField(max_length=255, blank=True)
    created_ts = models.BigIntegerField()
    claimed_ts = models.BigIntegerField()
    # None until the content is here.
    fetched_ts = models.BigIntegerField(null=True, blank=True)
    failed_ts = models.BigIntegerField(null=True, blank=True)
    failure = models.CharField(max_length=16, blank=True)
    # As for local media: fetched while the deprecated unauthenticated endpoints were
    # frozen (TRELLIS_MEDIA_LEGACY_UNAUTHENTICATED off), so not served by them.
    authenticated_only = models.BooleanField(default=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    quarantined_by = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        verbose_name = "remote media"
        verbose_name_plural = "remote media cache"
        constraints = [
            models.UniqueConstraint(fields=["origin", "media_id"], name="remote_media_unique")
        ]
        indexes = [models.Index(fields=["fetched_ts"], name="remote_media_fetched")]

    def __str__(self) -> str:
        return f"mxc://{self.origin}/{self.media_id}"

    @property
    def is_cached(self) -> bool:
        return self.fetched_ts is not None and bool(self.storage_name)

    @property
    def is_quarantined(self) -> bool:
        return self.quarantined_by is not None


class RemoteThumbnail(models.Model):
    """A thumbnail of remote media as asked for (size, method, animation): the other
    server's answer to that request, or one made here from the cached original when it
    had none."""

    media = models.ForeignKey(RemoteMedia, on_delete=models.CASCADE, related_name="thumbnails")
    # The request's parameters, not the thumbnail's own dimensions.
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    method = models.CharField(max_length=8)
    animated = models.BooleanField(default=False)
    content_type = models.CharField(max_length=64)
    size = models.BigIntegerField()
    storage_name = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["media", "width", "height", "method", "animated"],
                name="remote_thumbnail_unique_request",
            )
        ]

    def __str__(self) -> str:
        return f"{self.media}: {self.width}x{self.height} {self.method}"


class UrlPreview(models.Model):
    """The OpenGraph answer of GET /media/preview_url for a URL, kept until it expires."""

    url = models.TextField()
    url_sha256 = models.CharField(max_length=64, db_index=True)
    fetched_ts = models.BigIntegerField()
    expires_ts = models.BigIntegerField()
    og = models.JSONField()

    def __str__(self) -> str:
        return self.url
