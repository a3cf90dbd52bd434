"""Login tokens (Client-Server API, "Login", POST /login/get_token and m.login.token).

An already-logged-in user asks for a token; another client logs in with it once. The
token is random, lives two minutes (the spec's recommended default) and only its digest
is stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction

from accounts.clock import now_ms
from accounts.models import LoginToken, User
from accounts.tokens import token_digest
from protocol.errors import MatrixError

LOGIN_TOKEN_LIFETIME_MS = 2 * 60 * 1000
LOGIN_TOKEN_PREFIX = "mlt_"


@dataclass(frozen=True)
class NewLoginToken:
    login_token: str
    expires_in_ms: int


def do_create_login_token(user: User) -> NewLoginToken:
    """Issue a login token for ``user``, and forget the expired ones of anyone."""
    token = LOGIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = now_ms()
    LoginToken.objects.filter(expires_at_ms__lte=now).delete()
    LoginToken.objects.create(
        user=user, token_hash=token_digest(token), expires_at_ms=now + LOGIN_TOKEN_LIFETIME_MS
    )
    return NewLoginToken(token, LOGIN_TOKEN_LIFETIME_MS)


def do_consume_login_token(token: str) -> User:
    """The user a login token was issued to; the token cannot be used again.

    An unknown, used or expired token is 403 M_FORBIDDEN (Client-Server API, "Token-based").
    """
    with transaction.atomic():
        found = (
            LoginToken.objects.select_for_update()
            .select_related("user")
            .filter(token_hash=token_digest(token))
            .first()
        )
        if found is not None:
            found.delete()
    if found is None or found.expires_at_ms <= now_ms():
        raise MatrixError("M_FORBIDDEN", "Invalid or expired login token")
    return found.user
