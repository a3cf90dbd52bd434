"""The base of every identity-service view: the service may be off, requests authenticate
with identity access tokens, and errors use the Identity Service API's codes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import QueryDict
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.auth import client_ip
from config.matrix_api import Body, MatrixView
from identity.authentication import IdentityTokenAuthentication
from identity.models import IdentityToken
from identity.services.accounts import check_terms_signed, unauthorized
from protocol.errors import MatrixError, unrecognized

# The Client-Server API's generic codes and the Identity Service API's names for them
# (identity-service-api.md, "Standard error response").
_IDENTITY_ERRCODES = {"M_MISSING_PARAM": "M_MISSING_PARAMS", "M_BAD_JSON": "M_INVALID_PARAM"}


class IdentityView(MatrixView):
    authentication_classes = [IdentityTokenAuthentication]
    # Most endpoints need an identity access token and accepted terms.
    requires_account = True
    requires_terms = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if not settings.IDENTITY_SERVICE_ENABLED:
            raise unrecognized("This server runs no identity service")
        if not hasattr(self, (request.method or "").lower()):
            # A known endpoint with the wrong method: 405, before any authentication.
            raise unrecognized("Method not allowed for this endpoint", status=405)
        super().initial(request, *args, **kwargs)
        if self.requires_account:
            if request.user is None:
                raise unauthorized("Missing access token")
            if self.requires_terms:
                check_terms_signed(request.user.user_id)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, MatrixError) and exc.errcode in _IDENTITY_ERRCODES:
            exc = MatrixError(
                _IDENTITY_ERRCODES[exc.errcode], exc.error, status=exc.status, **exc.extra
            )
        return super().handle_exception(exc)

    def body(self, request: Request, *, allow_empty: bool = False) -> Body:
        """The JSON body; or, as the spec still allows (deprecated) for requestToken,
        submitToken and bind, a form, whose ``send_attempt`` is read as the integer."""
        content_type = request.META.get("CONTENT_TYPE", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return super().body(request, allow_empty=allow_empty)
        form: dict[str, Any] = dict(QueryDict(request._request.body).items())
        if any("\x00" in key or "\x00" in value for key, value in form.items()):
            raise MatrixError("M_INVALID_PARAM", "Parameters must not contain U+0000")
        attempt = form.get("send_attempt")
        if isinstance(attempt, str) and attempt.isascii() and attempt.isdigit():
            form["send_attempt"] = int(attempt)
        return Body(form)

    def account(self, request: Request) -> IdentityToken:
        account = request.user
        assert isinstance(account, IdentityToken)
        return account

    def ip(self, request: Request) -> str:
        return client_ip(request)
