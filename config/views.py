"""Server-wide Client-Server endpoints: versions, discovery, capabilities, fall-backs."""

from __future__ import annotations

from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import matrix_error_response
from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError
from protocol.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS

# Spec versions advertised by /versions: every one from v1.1 up to the latest whose
# Client-Server features Trellis serves (its headline endpoints are checked against the
# URL configuration in tests/config/test_versions.py). v1.18 would need the admin
# endpoints to lock and suspend users (/v1/admin/{lock,suspend}/{userId}) and invite
# blocking.
SUPPORTED_SPEC_VERSIONS: list[str] = [f"v1.{minor}" for minor in range(1, 18)]
# Features named as clients look for them, for what the versions above do not cover:
# authenticated media (v1.11, listed above) is also announced by its MSC's flag, which
# clients from before v1.11 look for.
UNSTABLE_FEATURES: dict[str, bool] = {"org.matrix.msc3916.stable": True}


class VersionsView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/client/versions"""
        return ok({"versions": SUPPORTED_SPEC_VERSIONS, "unstable_features": UNSTABLE_FEATURES})


class WellKnownClientView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /.well-known/matrix/client"""
        return ok({"m.homeserver": {"base_url": settings.PUBLIC_BASEURL}})


def federation_authority() -> str:
    """Where other servers reach us: configured, or the public base URL's host:port."""
    if settings.WELL_KNOWN_SERVER:
        return str(settings.WELL_KNOWN_SERVER)
    parts = urlsplit(settings.PUBLIC_BASEURL)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


class WellKnownServerView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /.well-known/matrix/server"""
        return ok({"m.server": federation_authority()})


def room_version_capability() -> dict[str, Any]:
    return {
        "default": DEFAULT_ROOM_VERSION.identifier,
        "available": {
            identifier: "stable" if version.is_stable else "unstable"
            for identifier, version in KNOWN_ROOM_VERSIONS.items()
        },
    }


class CapabilitiesView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/capabilities"""
        return ok(
            {
                "capabilities": {
                    "m.change_password": {"enabled": True},
                    "m.room_versions": room_version_capability(),
                    "m.set_displayname": {"enabled": True},
                    "m.set_avatar_url": {"enabled": True},
                    "m.3pid_changes": {"enabled": False},
                    "m.get_login_token": {"enabled": True},
                    "m.profile_fields": {"enabled": True},
                }
            }
        )


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    """GET /: what this server is, for a person who opens its address in a browser."""
    return render(
        request,
        "landing.html",
        {
            "server_name": settings.SERVER_NAME,
            "version": metadata.version("trellis"),
            "base_url": settings.PUBLIC_BASEURL,
        },
    )


@csrf_exempt
def unrecognized(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any path under /_matrix/ that no endpoint serves: 404 M_UNRECOGNIZED."""
    return matrix_error_response(MatrixError("M_UNRECOGNIZED", "Unrecognized request"))


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return matrix_error_response(MatrixError("M_UNRECOGNIZED", "Unrecognized request"))


def handler500(request: HttpRequest) -> JsonResponse:
    return matrix_error_response(MatrixError("M_UNKNOWN", "Internal server error", status=500))


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return matrix_error_response(MatrixError("M_UNKNOWN", "Bad request"))
