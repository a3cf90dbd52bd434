"""Media IDs and ``mxc://`` URIs (Client-Server API, "Matrix Content (mxc://) URIs")."""

from __future__ import annotations

import re
import secrets

from django.conf import settings

from protocol.errors import MatrixError

# The spec's character set for media IDs; anything else is refused before any lookup
# (Content repository, "Security considerations": no directory traversal).
MEDIA_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_media_id() -> str:
    """24 random URL-safe characters (144 bits): unguessable, never reused."""
    return secrets.token_urlsafe(18)


def mxc_uri(media_id: str, server_name: str | None = None) -> str:
    return f"mxc://{server_name or settings.SERVER_NAME}/{media_id}"


def check_media_id(media_id: str) -> None:
    if not MEDIA_ID_RE.match(media_id):
        raise MatrixError("M_NOT_FOUND", "Unknown media")


def is_local(server_name: str) -> bool:
    return bool(server_name == settings.SERVER_NAME)


def parse_mxc(uri: object) -> tuple[str, str] | None:
    """(server_name, media_id) of a well-formed mxc:// URI, else None."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        return None
    server_name, _, media_id = uri[len("mxc://") :].partition("/")
    if not server_name or not MEDIA_ID_RE.match(media_id):
        return None
    return server_name, media_id
