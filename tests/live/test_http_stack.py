"""The real ASGI stack: Matrix endpoints go through the lean async middleware list, the
admin portal through Django's full one (config/asgi.py)."""

from __future__ import annotations

import urllib.request

from tests.live.conftest import LiveServer


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}


def test_matrix_responses_carry_cors_and_nosniff(homeserver: LiveServer) -> None:
    status, headers = _get(f"{homeserver.url}/_matrix/client/versions")
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    assert "authorization" in headers["access-control-allow-headers"].lower()
    assert headers["x-content-type-options"] == "nosniff"

    status, headers = _get(f"{homeserver.url}/_matrix/client/v3/sync", method="OPTIONS")
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"


def test_the_admin_portal_keeps_django_s_protections(homeserver: LiveServer) -> None:
    status, headers = _get(f"{homeserver.url}/admin/login/")
    assert status == 200
    # Clickjacking and CSRF middleware still run for the portal.
    assert headers["x-frame-options"] == "DENY"
    assert "csrftoken" in headers.get("set-cookie", "")
