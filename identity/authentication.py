"""Authentication of identity-service requests (identity-service-api.md, "Authentication"):
an identity access token in ``Authorization: Bearer`` or the deprecated ``access_token``
query parameter. Missing or invalid credentials are 401 M_UNAUTHORIZED."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from identity.models import IdentityToken
from identity.services.accounts import account_for_token, unauthorized


def request_token(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Invalid Authorization header")
        return token.strip()
    return request.query_params.get("access_token") or None


class IdentityTokenAuthentication(BaseAuthentication):
    """Optional: requests without a token go on unauthenticated (``request.user`` None);
    views that need an account refuse them."""

    def authenticate(self, request: Request) -> tuple[IdentityToken, str] | None:
        token = request_token(request)
        if token is None:
            return None
        account = account_for_token(token)
        if account is None:
            raise unauthorized()
        return account, token

    def authenticate_header(self, request: Request) -> str:
        # Without this DRF turns 401s into 403s.
        return "Bearer"
