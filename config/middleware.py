"""HTTP middleware shared by every Matrix endpoint."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Client-Server API, "Web Browser Clients": every response carries these headers and
# an OPTIONS pre-flight to any endpoint is answered without authentication.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}

_MATRIX_PREFIXES = ("/_matrix/", "/.well-known/matrix/", "/_synapse/")


class MatrixCorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "OPTIONS" and request.path.startswith(_MATRIX_PREFIXES):
            response = HttpResponse(b"{}", content_type="application/json")
        else:
            response = self.get_response(request)
        if request.path.startswith(_MATRIX_PREFIXES):
            for header, value in CORS_HEADERS.items():
                response[header] = value
        return response
