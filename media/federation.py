"""Serving local media to other servers (Server-Server API, "Content Repository").

GET /_matrix/federation/v1/media/download/{mediaId} and .../thumbnail/{mediaId} answer
``multipart/mixed``: a JSON metadata part (an empty object) and the bytes.

Requests must carry a valid X-Matrix signature of the requesting server. Verifying it
needs the requesting server's keys, and fetching those needs the federation client,
which Trellis does not have yet; until then :func:`authenticate_federation_request`
refuses every request with 401 M_UNAUTHORIZED, so nothing is served to anyone.
"""

from __future__ import annotations

import secrets

from django.http import HttpRequest, HttpResponse

from media import serving
from protocol.errors import MatrixError


def authenticate_federation_request(request: HttpRequest) -> str:
    """The origin server name of a request with a valid X-Matrix signature.

    Not implemented yet (needs remote key fetching): refuses every request.
    """
    if not request.headers.get("Authorization", "").startswith("X-Matrix "):
        raise MatrixError("M_UNAUTHORIZED", "Missing X-Matrix request signature")
    raise MatrixError(
        "M_UNAUTHORIZED", "This server cannot verify federation request signatures yet"
    )


def multipart_response(data: bytes, content_type: str, disposition: str) -> HttpResponse:
    """The two-part multipart/mixed answer (RFC 2046 section 5.1)."""
    boundary = secrets.token_hex(16)
    while boundary.encode() in data:
        boundary = secrets.token_hex(16)
    parts = [
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n".encode(),
        (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Disposition: {disposition}\r\n\r\n"
        ).encode(),
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    response = HttpResponse(b"".join(parts), content_type=f"multipart/mixed; boundary={boundary}")
    return serving.add_media_headers(response)  # type: ignore[return-value]
