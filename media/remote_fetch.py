"""Asking another server for its media (Server-Server API, "Content Repository").

The authenticated endpoints first (``GET /_matrix/federation/v1/media/download|thumbnail``,
signed with X-Matrix, answered ``multipart/mixed``); a server that answers
``404 M_UNRECOGNIZED`` does not have them (Synapse before 1.111, for instance) and is asked
at the deprecated ``/_matrix/media/v3/...`` with ``allow_remote=false``, as the spec says.

A multipart answer may name a ``Location`` instead of carrying the bytes: that URL is
fetched by media.preview.fetch, the URL fetcher with the server-side request forgery guard
(every address checked, redirects followed by hand and bounded, loops refused), never
kept. Everything is bounded: the bytes by TRELLIS_MAX_UPLOAD_SIZE, the whole exchange by
``FETCH_TIMEOUT_S``.

Failures come out as RemoteMediaError with a ``kind`` the caller maps to its answer.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from django.conf import settings

from federation import client
from federation.transport import HttpResponse
from media.preview import fetch
from protocol import media_multipart

logger = logging.getLogger(__name__)

# A whole fetch, redirect included (the federation client's default is for JSON).
FETCH_TIMEOUT_S = 60.0
# Room for the multipart framing around the largest allowed content.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# What we ask the other server to wait for content still being uploaded (the spec's
# default, and the most our own clients may ask of us).
MAX_REMOTE_TIMEOUT_MS = 20_000
USER_AGENT = "Trellis (Matrix homeserver; remote media)"

NOT_FOUND = "not_found"
TOO_LARGE = "too_large"
NOT_YET_UPLOADED = "not_yet_uploaded"
UNAVAILABLE = "unavailable"


class RemoteMediaError(Exception):
    """The other server did not give us the media; ``kind`` says how."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Fetched:
    content_type: str
    content_disposition: str
    data: bytes


def _errcode(response: HttpResponse) -> str | None:
    try:
        body = json.loads(response.body)
    except (ValueError, RecursionError):
        return None
    errcode = body.get("errcode") if isinstance(body, dict) else None
    return errcode if isinstance(errcode, str) else None


def _get(origin: str, path: str, deadline: float) -> HttpResponse:
    timeout_s = deadline - time.monotonic()
    if timeout_s <= 0:
        raise RemoteMediaError(UNAVAILABLE, f"{origin} took too long")
    try:
        return client.send_request(
            origin,
            "GET",
            path,
            timeout_s=timeout_s,
            max_bytes=settings.MAX_UPLOAD_SIZE + MULTIPART_OVERHEAD_BYTES,
        )
    except client.ResponseTooLarge as exc:
        raise RemoteMediaError(TOO_LARGE, str(exc)) from exc
    except client.FederationError as exc:
        raise RemoteMediaError(UNAVAILABLE, str(exc)) from exc


def _check_status(origin: str, response: HttpResponse) -> None:
    if response.status == 200:
        return
    errcode = _errcode(response)
    if response.status == 404:
        raise RemoteMediaError(NOT_FOUND, f"{origin} has no such media")
    if errcode == "M_NOT_YET_UPLOADED":
        raise RemoteMediaError(NOT_YET_UPLOADED, f"{origin}: not yet uploaded")
    if errcode == "M_TOO_LARGE":
        raise RemoteMediaError(TOO_LARGE, f"{origin}: too large")
    raise RemoteMediaError(UNAVAILABLE, f"{origin} answered {response.status} ({errcode})")


def _checked_size(origin: str, fetched: Fetched) -> Fetched:
    if len(fetched.data) > settings.MAX_UPLOAD_SIZE:
        raise RemoteMediaError(TOO_LARGE, f"{origin}: more than {settings.MAX_UPLOAD_SIZE} bytes")
    return fetched


def _follow(origin: str, location: str, deadline: float) -> Fetched:
    """The media at a multipart answer's ``Location``, fetched as any outside URL is."""
    policy = fetch.Policy(
        allow=fetch.parse_networks(settings.FEDERATION_IP_ALLOWLIST),
        deny=(),
        max_bytes=settings.MAX_UPLOAD_SIZE,
        timeout_s=max(deadline - time.monotonic(), 0.001),
    )
    try:
        got = fetch.fetch(location, policy, user_agent=USER_AGENT)
    except fetch.FetchTooLarge as exc:
        raise RemoteMediaError(TOO_LARGE, f"{origin}'s redirect: {exc}") from exc
    except (fetch.FetchRefused, fetch.FetchFailed) as exc:
        raise RemoteMediaError(UNAVAILABLE, f"{origin}'s redirect: {exc}") from exc
    return Fetched(got.content_type, got.content_disposition, got.body)


def _from_multipart(origin: str, response: HttpResponse, deadline: float) -> Fetched:
    try:
        answer = media_multipart.media_answer(
            response.headers.get("content-type", ""), response.body
        )
    except media_multipart.MultipartError as exc:
        raise RemoteMediaError(UNAVAILABLE, f"{origin}: a bad multipart answer: {exc}") from exc
    if answer.location is not None:
        return _checked_size(origin, _follow(origin, answer.location, deadline))
    return _checked_size(
        origin, Fetched(answer.content_type, answer.content_disposition, answer.data)
    )


def _fetch(origin: str, federation_path: str, legacy_path: str, timeout_s: float) -> Fetched:
    deadline = time.monotonic() + timeout_s
    response = _get(origin, federation_path, deadline)
    if response.status == 404 and _errcode(response) == "M_UNRECOGNIZED":
        # "servers MUST try the endpoints described below before falling back to the
        # deprecated /_matrix/media/* endpoints when they receive a 404 M_UNRECOGNIZED
        # error. When falling back, servers MUST be sure to set allow_remote to false."
        response = _get(origin, legacy_path, deadline)
        _check_status(origin, response)
        return _checked_size(
            origin,
            Fetched(
                response.headers.get("content-type", ""),
                response.headers.get("content-disposition", ""),
                response.body,
            ),
        )
    _check_status(origin, response)
    return _from_multipart(origin, response, deadline)


def _timeout(timeout_ms: int) -> int:
    return min(max(timeout_ms, 0), MAX_REMOTE_TIMEOUT_MS)


def download(
    origin: str, media_id: str, *, timeout_ms: int, timeout_s: float = FETCH_TIMEOUT_S
) -> Fetched:
    """The content of ``mxc://<origin>/<media_id>``, from ``origin``."""
    quoted = quote(media_id, safe="")
    wait = urlencode({"timeout_ms": _timeout(timeout_ms)})
    return _fetch(
        origin,
        f"/_matrix/federation/v1/media/download/{quoted}?{wait}",
        f"/_matrix/media/v3/download/{origin}/{quoted}?allow_remote=false&{wait}",
        timeout_s,
    )


def thumbnail(
    origin: str,
    media_id: str,
    *,
    width: int,
    height: int,
    method: str,
    animated: bool,
    timeout_ms: int,
    timeout_s: float = FETCH_TIMEOUT_S,
) -> Fetched:
    """``origin``'s thumbnail of its media for these parameters."""
    quoted = quote(media_id, safe="")
    query = {
        "width": width,
        "height": height,
        "method": method,
        "animated": "true" if animated else "false",
        "timeout_ms": _timeout(timeout_ms),
    }
    return _fetch(
        origin,
        f"/_matrix/federation/v1/media/thumbnail/{quoted}?{urlencode(query)}",
        f"/_matrix/media/v3/thumbnail/{origin}/{quoted}"
        f"?{urlencode({**query, 'allow_remote': 'false'})}",
        timeout_s,
    )
