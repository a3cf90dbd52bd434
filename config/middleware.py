"""HTTP middleware shared by every Matrix endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase

# Client-Server API, "Web Browser Clients": every response carries these headers and
# an OPTIONS pre-flight to any endpoint is answered without authentication.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}

MATRIX_PREFIXES = ("/_matrix/", "/.well-known/matrix/", "/_synapse/")
# Django's SecurityMiddleware is not in front of Matrix endpoints (see config/asgi.py):
# its one header that matters for an API is set here.
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}


def _preflight(request: HttpRequest) -> HttpResponse | None:
    if request.method == "OPTIONS" and request.path.startswith(MATRIX_PREFIXES):
        return HttpResponse(b"{}", content_type="application/json")
    return None


def _add_headers(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if request.path.startswith(MATRIX_PREFIXES):
        for header, value in CORS_HEADERS.items():
            response[header] = value
        for header, value in _SECURITY_HEADERS.items():
            response.setdefault(header, value)
    return response


class MatrixCorsMiddleware:
    """CORS on every Matrix response; sync and async, so async views stay async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        response = _preflight(request) or self.get_response(request)
        return _add_headers(request, response)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        preflight = _preflight(request)
        if preflight is not None:
            return _add_headers(request, preflight)
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return _add_headers(request, await get_response(request))
