"""The content repository's Client-Server endpoints."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from federation.auth import XMatrixAuthentication
from media import federation, ids, selectors, serving
from media.models import LocalMedia, RemoteMedia
from media.services import previews, remote_media, thumbnails, uploads
from protocol.errors import MatrixError, invalid_param, missing_param

_DIGITS = re.compile(r"^[0-9]{1,9}$")


def _declared_length(request: Request) -> int | None:
    value = request.META.get("CONTENT_LENGTH")
    if value in (None, ""):
        return None
    try:
        length = int(value)
    except ValueError:
        raise MatrixError("M_UNKNOWN", "Bad Content-Length") from None
    return length if length >= 0 else None


def _int_param(request: Request, name: str, *, required: bool, default: int = 0) -> int:
    value = request.query_params.get(name)
    if value is None:
        if required:
            raise missing_param(name)
        return default
    if not _DIGITS.match(value):
        raise invalid_param(f"{name} must be a non-negative integer")
    return int(value)


def _bool_param(request: Request, name: str, *, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise invalid_param(f"{name} must be true or false")
    return value == "true"


def _timeout_ms(request: Request) -> int:
    return _int_param(request, "timeout_ms", required=False, default=selectors.DEFAULT_TIMEOUT_MS)


def _servable(
    request: Request, server_name: str, media_id: str, *, legacy: bool
) -> LocalMedia | RemoteMedia:
    """Local media, or another server's, fetched over federation unless cached."""
    timeout_ms = _timeout_ms(request)
    if ids.is_local(server_name):
        return selectors.servable_media(
            server_name, media_id, timeout_ms=timeout_ms, legacy=legacy
        )
    # allow_remote is a parameter of the deprecated endpoints only ("to prevent routing
    # loops where the server contacts itself").
    allow_fetch = _bool_param(request, "allow_remote", default=True) if legacy else True
    return remote_media.do_get_remote_media(
        server_name, media_id, timeout_ms=timeout_ms, legacy=legacy, allow_fetch=allow_fetch
    )


class UploadView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/media/v3/upload"""
        media = uploads.do_upload(
            request.user.user_id,
            request._request,
            declared_length=_declared_length(request),
            content_type=request.META.get("CONTENT_TYPE"),
            filename=request.query_params.get("filename"),
        )
        return ok({"content_uri": ids.mxc_uri(media.media_id)})


class CreateView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/media/v1/create"""
        media = uploads.do_create_media_id(request.user.user_id)
        return ok(
            {
                "content_uri": ids.mxc_uri(media.media_id),
                "unused_expires_at": media.unused_expires_ts,
            }
        )


class UploadToMediaIdView(MatrixView):
    requires_auth = True

    def put(self, request: Request, server_name: str, media_id: str) -> Response:
        """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"""
        uploads.do_upload_to_media_id(
            request.user.user_id,
            server_name,
            media_id,
            request._request,
            declared_length=_declared_length(request),
            content_type=request.META.get("CONTENT_TYPE"),
            filename=request.query_params.get("filename"),
        )
        return ok({})


class ConfigView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v1/media/config"""
        return ok({"m.upload.size": settings.MAX_UPLOAD_SIZE})


class DownloadView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})
    legacy = False
    # Only repeated in Content-Disposition, never stored or looked up.
    unbounded_path_params = ("file_name",)

    def get(
        self, request: Request, server_name: str, media_id: str, file_name: str | None = None
    ) -> HttpResponseBase:
        """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]"""
        media = _servable(request, server_name, media_id, legacy=self.legacy)
        name = file_name or media.upload_name
        return serving.file_response(
            media.storage_name,
            media.size or 0,
            media.content_type,
            serving.content_disposition(serving.disposition_type(media.content_type), name),
        )


class LegacyDownloadView(DownloadView):
    """Deprecated and unauthenticated: serves only media from before the freeze."""

    requires_auth = False
    legacy = True

    def get(self, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]"""
        return super().get(*args, **kwargs)


class ThumbnailView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})
    legacy = False

    def thumbnail(
        self, request: Request, server_name: str, media_id: str
    ) -> thumbnails.ThumbnailFile:
        width = _int_param(request, "width", required=True)
        height = _int_param(request, "height", required=True)
        if width < 1 or height < 1:
            raise invalid_param("width and height must be at least 1")
        method = request.query_params.get("method", "scale")
        if method not in thumbnails.METHODS:
            raise invalid_param("method must be crop or scale")
        animated = _bool_param(request, "animated")
        media = _servable(request, server_name, media_id, legacy=self.legacy)
        if isinstance(media, RemoteMedia):
            return remote_media.do_get_remote_thumbnail(
                media, width, height, method, animated=animated, timeout_ms=_timeout_ms(request)
            )
        return thumbnails.do_get_thumbnail(media, width, height, method, animated=animated)

    def get(self, request: Request, server_name: str, media_id: str) -> HttpResponseBase:
        """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"""
        thumb = self.thumbnail(request, server_name, media_id)
        if thumb.data is not None:
            return serving.bytes_response(
                thumb.data, thumb.content_type, _thumbnail_disposition(thumb)
            )
        return serving.file_response(
            thumb.storage_name, thumb.size, thumb.content_type, _thumbnail_disposition(thumb)
        )


def _thumbnail_disposition(thumb: thumbnails.ThumbnailFile) -> str:
    extension = thumb.content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
    return serving.content_disposition("inline", f"thumbnail.{extension}")


class LegacyThumbnailView(ThumbnailView):
    requires_auth = False
    legacy = True

    def get(self, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}"""
        return super().get(*args, **kwargs)


class PreviewUrlView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v1/media/preview_url"""
        url = self.query_str(request, "url", required=True)
        assert url is not None
        ts = request.query_params.get("ts")
        if ts is not None and not re.match(r"^-?[0-9]{1,19}$", ts):
            # Validated, then not needed: the answer is the newest preview we have.
            raise invalid_param("ts must be an integer")
        return ok(previews.do_preview_url(url))


class FederationDownloadView(MatrixView):
    # Servers sign requests (X-Matrix); client access tokens mean nothing here.
    authentication_classes = [XMatrixAuthentication]

    def get(self, request: Request, media_id: str) -> HttpResponseBase:
        """GET /_matrix/federation/v1/media/download/{mediaId}"""
        media = selectors.servable_media(
            settings.SERVER_NAME, media_id, timeout_ms=_timeout_ms(request)
        )
        return federation.multipart_response(
            serving.read_stored(media.storage_name),
            media.content_type,
            serving.content_disposition(
                serving.disposition_type(media.content_type), media.upload_name
            ),
        )


class FederationThumbnailView(ThumbnailView):
    authentication_classes = [XMatrixAuthentication]

    def get(self, request: Request, media_id: str) -> HttpResponseBase:  # type: ignore[override]
        """GET /_matrix/federation/v1/media/thumbnail/{mediaId}"""
        thumb = self.thumbnail(request, settings.SERVER_NAME, media_id)
        return federation.multipart_response(
            thumb.data if thumb.data is not None else serving.read_stored(thumb.storage_name),
            thumb.content_type,
            _thumbnail_disposition(thumb),
        )
