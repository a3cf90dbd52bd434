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


def support_info() -> dict[str, Any] | None:
    """The administrator's contacts and support page as configured; None if neither is."""
    contact: dict[str, str] = {}
    if settings.SUPPORT_MXID:
        contact["matrix_id"] = settings.SUPPORT_MXID
    if settings.SUPPORT_EMAIL:
        contact["email_address"] = settings.SUPPORT_EMAIL
    info: dict[str, Any] = {}
    if contact:
        info["contacts"] = [{**contact, "role": "m.role.admin"}]
    if settings.SUPPORT_PAGE:
        info["support_page"] = settings.SUPPORT_PAGE
    return info or None


class WellKnownSupportView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /.well-known/matrix/support"""
        info = support_info()
        if info is None:
            raise MatrixError("M_NOT_FOUND", "No support information is configured")
        return ok(info)


# Third-party networks this server reaches through bridges (application services), by
# protocol name. Trellis has no application services yet, so it knows none: every
# protocol is unknown and no lookup finds anything.
THIRD_PARTY_PROTOCOLS: dict[str, dict[str, Any]] = {}


def _known_protocol(protocol: str) -> dict[str, Any]:
    if protocol not in THIRD_PARTY_PROTOCOLS:
        raise MatrixError("M_NOT_FOUND", f"Unknown protocol {protocol!r}")
    return THIRD_PARTY_PROTOCOLS[protocol]


class ThirdPartyProtocolsView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/thirdparty/protocols"""
        return ok(THIRD_PARTY_PROTOCOLS)


class ThirdPartyProtocolView(MatrixView):
    requires_auth = True

    def get(self, request: Request, protocol: str) -> Response:
        """GET /_matrix/client/v3/thirdparty/protocol/{protocol}"""
        return ok(_known_protocol(protocol))


class ThirdPartyQueryView(MatrixView):
    """GET /_matrix/client/v3/thirdparty/{location,user}/{protocol}: the bridge serving
    the protocol would answer; no protocol is known, so it is 404 M_NOT_FOUND."""

    requires_auth = True

    def get(self, request: Request, protocol: str) -> Response:
        """GET /_matrix/client/v3/thirdparty/{location,user}/{protocol}"""
        _known_protocol(protocol)
        return ok([])


class ThirdPartyLocationByAliasView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/thirdparty/location"""
        self.query_str(request, "alias", required=True)
        # Each known protocol's bridge would be asked; there are none, so none is found.
        return ok([])


class ThirdPartyUserByIdView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/thirdparty/user"""
        self.query_str(request, "userid", required=True)
        return ok([])


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
                    "m.3pid_changes": {"enabled": True},
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
