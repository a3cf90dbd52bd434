"""Access-token authentication for the Client-Server API (DRF authentication class)."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts import selectors
from accounts.models import AccessToken, User
from accounts.services import sessions
from protocol.errors import MatrixError


def extract_access_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer`` or the deprecated ``access_token`` query."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError("M_MISSING_TOKEN", "Invalid Authorization header")
        return token.strip()
    token = request.query_params.get("access_token")
    return token or None


class AccessTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:
        token = extract_access_token(request)
        if token is None:
            return None
        session = selectors.session_for_token(token, ip=request.META.get("REMOTE_ADDR"))
        sessions.do_mark_session_used(session)
        return session.user, session

    def authenticate_header(self, request: Request) -> str:
        # Without this DRF turns 401s into 403s.
        return "Bearer"
