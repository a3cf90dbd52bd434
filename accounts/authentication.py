"""Access-token authentication for the Client-Server API (DRF authentication class)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts import selectors
from accounts.models import AccessToken, User
from accounts.services import sessions
from protocol.errors import MatrixError


def extract_access_token(meta: Mapping[str, Any], query: Mapping[str, str]) -> str | None:
    """The token from ``Authorization: Bearer`` or the deprecated ``access_token`` query."""
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError("M_MISSING_TOKEN", "Invalid Authorization header")
        return str(token.strip())
    token = query.get("access_token")
    return token or None


def authenticate_request(
    meta: Mapping[str, Any], query: Mapping[str, str], *, allow_locked: bool = False
) -> AccessToken | None:
    """The live session a request's access token names; None without a token.

    Shared by the DRF views and the async /sync view, so both apply the same rules.
    A locked account's session is refused unless ``allow_locked`` (MatrixView checks
    it itself, knowing which endpoints a locked account may still use).
    """
    token = extract_access_token(meta, query)
    if token is None:
        return None
    session = selectors.session_for_token(token, ip=meta.get("REMOTE_ADDR"))
    if not allow_locked:
        selectors.check_not_locked(session.user)
    sessions.do_mark_session_used(session)
    return session


class AccessTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:
        session = authenticate_request(request.META, request.query_params, allow_locked=True)
        if session is None:
            return None
        return session.user, session

    def authenticate_header(self, request: Request) -> str:
        # Without this DRF turns 401s into 403s.
        return "Bearer"
