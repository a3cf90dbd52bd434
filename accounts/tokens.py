"""Access and refresh tokens: generated at random, stored only as digests."""

from __future__ import annotations

import hashlib
import secrets

ACCESS_PREFIX = "mat_"
REFRESH_PREFIX = "mar_"


def new_access_token() -> str:
    return ACCESS_PREFIX + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
