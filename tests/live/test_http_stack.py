"""The real ASGI stack: Matrix endpoints go through the lean async middleware list, the
admin portal through Django's full one (config/asgi.py)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import quote

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


def test_an_encoded_slash_in_a_path_parameter_reaches_its_endpoint(
    homeserver: LiveServer,
) -> None:
    """Daphne hands the application a decoded path; %2F still routes (config/paths.py)."""
    registered = _json(
        f"{homeserver.url}/_matrix/client/v3/register",
        "POST",
        {"username": "slashy", "password": "pw-slashy", "auth": {"type": "m.login.dummy"}},
    )
    token = registered["access_token"]
    user = quote(registered["user_id"], safe="")
    path = f"{homeserver.url}/_matrix/client/v3/user/{user}/account_data/org.example%2Fslash"
    assert _json(path, "PUT", {"live": True}, token) == {}
    assert _json(path, "GET", None, token) == {"live": True}


def _json(url: str, method: str, body: object, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
