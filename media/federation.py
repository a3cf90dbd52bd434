"""Serving local media to other servers (Server-Server API, "Content Repository").

GET /_matrix/federation/v1/media/download/{mediaId} and .../thumbnail/{mediaId} answer
``multipart/mixed``: a JSON metadata part (an empty object) and the bytes. Requests are
authenticated with the requesting server's X-Matrix signature
(federation.auth.XMatrixAuthentication) before the views run.
"""

from __future__ import annotations

import secrets

from django.http import HttpResponse

from media import serving


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
