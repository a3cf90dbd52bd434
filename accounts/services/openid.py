"""OpenID tokens: a user proves their Matrix ID to a third party (an integration
manager, a widget), which checks the token with this server over federation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from accounts.clock import now_ms
from accounts.models import OpenIdToken, User
from accounts.tokens import token_digest
from protocol.errors import MatrixError

OPENID_PREFIX = "mao_"
# How long a token is good for: long enough to hand it on, short as a password it is not.
OPENID_TOKEN_LIFETIME_MS = 3600 * 1000


@dataclass(frozen=True)
class IssuedOpenIdToken:
    access_token: str
    expires_in_s: int


def do_issue_openid_token(user: User) -> IssuedOpenIdToken:
    """Create an OpenID token for ``user``, dropping their expired ones."""
    now = now_ms()
    OpenIdToken.objects.filter(user=user, expires_at_ms__lte=now).delete()
    token = OPENID_PREFIX + secrets.token_urlsafe(32)
    OpenIdToken.objects.create(
        user=user, token_hash=token_digest(token), expires_at_ms=now + OPENID_TOKEN_LIFETIME_MS
    )
    return IssuedOpenIdToken(access_token=token, expires_in_s=OPENID_TOKEN_LIFETIME_MS // 1000)


def openid_token_owner(token: str) -> str:
    """The user ID that issued ``token``; 401 M_UNKNOWN_TOKEN if unknown or expired."""
    row = (
        OpenIdToken.objects.filter(token_hash=token_digest(token), expires_at_ms__gt=now_ms())
        .select_related("user")
        .first()
    )
    if row is None:
        raise MatrixError("M_UNKNOWN_TOKEN", "OpenID token unknown or expired", status=401)
    return row.user.user_id
