"""Sending media bytes safely (Client-Server API, "Content repository").

Every media response carries the spec's recommended Content-Security-Policy,
``X-Content-Type-Options: nosniff`` and ``Cross-Origin-Resource-Policy: cross-origin``.
The Content-Type is the uploader's, but only the spec's list of types that cannot run
script in a browser is served ``inline``; everything else (HTML, SVG, JavaScript, ...)
is an ``attachment``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO
from urllib.parse import quote

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse

from config.request_threads import in_request_thread
from media.storage import media_storage

# "When serving content, the server SHOULD provide a Content-Security-Policy header. The
# recommended policy is ..." (Content repository).
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)
# "Serving inline content": the types that may be served with Content-Disposition: inline.
INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)
# Files up to this size are sent in one piece; larger ones are streamed in chunks.
STREAM_ABOVE_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 256 * 1024
# A token in the sense of RFC 9110 minus the characters that confuse parsers of
# Content-Disposition; any other name goes in filename* (RFC 6266, RFC 8187).
_PLAIN_NAME_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !#$&+-.^_`|~()[]{}@,=:"
)


def base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def disposition_type(content_type: str) -> str:
    return "inline" if base_type(content_type) in INLINE_CONTENT_TYPES else "attachment"


def content_disposition(disposition: str, filename: str | None) -> str:
    """``inline``/``attachment`` with the file name, quoted or RFC 8187-encoded."""
    if not filename:
        return disposition
    if all(c in _PLAIN_NAME_CHARS for c in filename):
        return f'{disposition}; filename="{filename}"'
    return f"{disposition}; filename*=utf-8''{quote(filename, safe='')}"


def add_media_headers(response: HttpResponseBase) -> HttpResponseBase:
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


async def _chunks(fp: IO[bytes]) -> AsyncIterator[bytes]:
    read, close = in_request_thread(fp.read), in_request_thread(fp.close)
    try:
        while chunk := await read(CHUNK_BYTES):
            yield chunk
    finally:
        await close()


def read_stored(storage_name: str) -> bytes:
    with media_storage().open(storage_name, "rb") as fp:
        data: bytes = fp.read()
        return data


def bytes_response(data: bytes, content_type: str, disposition: str) -> HttpResponseBase:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = disposition
    return add_media_headers(response)


def file_response(
    storage_name: str, size: int, content_type: str, disposition: str
) -> HttpResponseBase:
    """The stored file as a response: in one piece, or streamed if it is large."""
    response: HttpResponseBase
    if size <= STREAM_ABOVE_BYTES:
        response = HttpResponse(read_stored(storage_name), content_type=content_type)
    else:
        fp = media_storage().open(storage_name, "rb")
        response = StreamingHttpResponse(_chunks(fp), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Content-Disposition"] = disposition
    return add_media_headers(response)
