"""Inbound request authentication between servers (X-Matrix), for DRF views.

Spec: content/server-server-api.md#request-authentication. A federation view sets
``authentication_classes = [XMatrixAuthentication]``; every request then needs a valid
signature of its origin server, or is refused before the view runs, and
``request.auth.origin`` names the server that sent it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.clock import now_ms
from config.matrix_api import parse_json
from federation import keyring
from protocol.errors import MatrixError
from protocol.signing import SignatureVerifyError
from protocol.x_matrix import (
    XMatrixAuthorization,
    XMatrixHeaderError,
    is_x_matrix,
    parse_authorization,
    verify_request,
)

logger = logging.getLogger(__name__)

# Methods whose JSON body is signed (the spec requires one for POST and PUT).
_METHODS_WITH_CONTENT = ("POST", "PUT")


@dataclass(frozen=True, slots=True)
class RemoteServer:
    """The authenticated sender of a federation request (DRF's ``request.user``)."""

    server_name: str
    is_authenticated = True


def request_target(request: HttpRequest) -> str:
    """The request target as the sender wrote it, path and query still percent-encoded:
    what X-Matrix signs (server-server-api.md, "Request Authentication": "uri: The full
    request URI"), so ``/event/%24abc`` is checked as ``%24``, not as ``$``.

    Under ASGI it is the scope's ``raw_path`` and ``query_string`` (Daphne); under WSGI the
    ``RAW_URI`` or ``REQUEST_URI`` the server passes on (gunicorn, uWSGI, mod_wsgi, and
    the test client, config/paths.py). Only a server that gives neither leaves Django's
    re-encoding of the decoded path, which differs from what a sender that escapes more
    than it must (as Synapse does) signed.
    """
    scope: dict[str, Any] | None = getattr(request, "scope", None)
    if scope is not None and scope.get("raw_path"):
        path = scope["raw_path"].decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        return f"{path}?{query}" if query else path
    raw_uri = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw_uri:
        target = str(raw_uri)
        if not target.startswith("/"):
            # The absolute form (``https://host/path?query``), as a proxy may send it.
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return target
    return request.get_full_path()


def _unauthorized(message: str) -> MatrixError:
    return MatrixError("M_UNAUTHORIZED", message)


def authenticate_request(request: HttpRequest) -> XMatrixAuthorization:
    """Check a request's X-Matrix signature; return its checked parameters.

    401 M_UNAUTHORIZED without a signature, for another destination, with a key that
    cannot be had, or with a signature that does not verify; 400 for a malformed header
    and M_NOT_JSON for a signed body that is not JSON.
    """
    header = request.headers.get("Authorization", "")
    if not header or not is_x_matrix(header):
        raise _unauthorized("Missing X-Matrix Authorization header")
    try:
        auth = parse_authorization(header)
    except XMatrixHeaderError as exc:
        raise MatrixError(
            "M_UNAUTHORIZED", f"Malformed X-Matrix Authorization header: {exc}", status=400
        ) from None
    if auth.destination is not None and auth.destination != settings.SERVER_NAME:
        raise _unauthorized("The request is for another server")
    content = None
    if request.method in _METHODS_WITH_CONTENT:
        content = parse_json(request.body)
    try:
        verify_key = keyring.get_verify_key(auth.origin, auth.key_id, valid_at_ts=now_ms())
    except keyring.KeyUnavailable as exc:
        logger.info("refused a request from %s: %s", auth.origin, exc)
        raise _unauthorized(f"Cannot find key {auth.key_id} of {auth.origin}") from None
    try:
        verify_request(
            auth,
            verify_key,
            request.method or "",
            request_target(request),
            settings.SERVER_NAME,
            content,
        )
    except SignatureVerifyError:
        raise _unauthorized("Invalid X-Matrix signature") from None
    return auth


class XMatrixAuthentication(BaseAuthentication):
    """Required X-Matrix authentication: refuses unsigned requests itself."""

    def authenticate(self, request: Request) -> tuple[RemoteServer, XMatrixAuthorization]:
        auth = authenticate_request(request._request)
        return RemoteServer(auth.origin), auth

    def authenticate_header(self, request: Request) -> str:
        # Without this DRF turns 401s into 403s.
        return "X-Matrix"
