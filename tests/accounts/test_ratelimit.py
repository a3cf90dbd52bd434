"""Rate limiting of login and registration (Client-Server API, "Rate limiting").

Buckets refill at a rate too slow to matter here, so no test depends on timing.
"""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User
from tests.conftest import MatrixTestClient, Persona

BURST = 5


@pytest.fixture
def ratelimited(settings: Any) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {action: (0.0001, BURST) for action in settings.RATELIMITS}


def login_from(api: MatrixTestClient, ip: str, user: str, password: str) -> Any:
    response = api.client.post(
        "/_matrix/client/v3/login",
        {"type": "m.login.password", "user": user, "password": password},
        content_type="application/json",
        REMOTE_ADDR=ip,
    )
    return response


def assert_limited(response: Any) -> None:
    assert response.status == 429
    assert response.errcode == "M_LIMIT_EXCEEDED"
    assert isinstance(response.body["retry_after_ms"], int)
    assert response.body["retry_after_ms"] > 0
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.usefixtures("ratelimited")
def test_login_is_limited_per_address(api: MatrixTestClient, alice: Persona) -> None:
    for _ in range(BURST):
        assert api.login("alice", alice.password).status == 200

    assert_limited(api.login("alice", alice.password))
    assert User.objects.get(localpart="alice").devices.count() == 1 + BURST


@pytest.mark.usefixtures("ratelimited")
def test_failed_logins_are_limited_per_user_across_addresses(
    api: MatrixTestClient, alice: Persona
) -> None:
    for n in range(BURST):
        assert login_from(api, f"10.0.0.{n}", "alice", "wrong").status_code == 403

    limited = login_from(api, "10.0.1.1", "alice", alice.password)

    assert limited.status_code == 429
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert login_from(api, "10.0.1.2", "bob", "wrong").status_code == 403


@pytest.mark.usefixtures("ratelimited")
def test_successful_logins_do_not_count_as_failures(api: MatrixTestClient, alice: Persona) -> None:
    for n in range(BURST + 2):
        assert login_from(api, f"10.0.0.{n}", "alice", alice.password).status_code == 200


@pytest.mark.usefixtures("ratelimited")
def test_registration_is_limited_per_address(api: MatrixTestClient) -> None:
    for n in range(BURST):
        assert api.post("register", {"username": f"user{n}"}).status == 401

    assert_limited(api.post("register", {"username": "late"}))


@pytest.mark.usefixtures("ratelimited")
def test_username_availability_is_limited(api: MatrixTestClient) -> None:
    for n in range(BURST):
        assert api.get(f"register/available?username=u{n}").status == 200

    assert_limited(api.get("register/available?username=late"))


def test_nothing_is_limited_when_rate_limiting_is_off(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.RATELIMIT_ENABLED = False

    for _ in range(4 * BURST):
        assert api.login("alice", alice.password).status == 200
        assert api.login("alice", "wrong").status == 403
