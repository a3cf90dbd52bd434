"""Time-limited TURN credentials from a secret shared with the TURN server.

The TURN REST API scheme (draft-uberti-behave-turn-rest-00, section 2.2) as coturn
implements it with ``use-auth-secret``: the username is ``<expiry>:<user id>``, where
``expiry`` is a Unix time in seconds, and the password is the base64 HMAC-SHA1 of the
username keyed with the shared secret. The TURN server recomputes the password from the
username and refuses it once ``expiry`` has passed, so nothing is stored on either side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TypedDict

from django.conf import settings


class TurnServer(TypedDict):
    """The body of GET /voip/turnServer (Client-Server API, "Voice over IP")."""

    username: str
    password: str
    uris: list[str]
    ttl: int


def turn_password(shared_secret: str, username: str) -> str:
    """coturn's password for ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(shared_secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_server_for(user_id: str, *, now_s: float | None = None) -> TurnServer | None:
    """Credentials for ``user_id`` valid for TRELLIS_TURN_TTL_S from now, or None when no
    TURN server is configured."""
    if not settings.TURN_URIS or not settings.TURN_SHARED_SECRET:
        return None
    ttl = int(settings.TURN_TTL_S)
    expiry = int(time.time() if now_s is None else now_s) + ttl
    username = f"{expiry}:{user_id}"
    return {
        "username": username,
        "password": turn_password(settings.TURN_SHARED_SECRET, username),
        "uris": list(settings.TURN_URIS),
        "ttl": ttl,
    }
