"""The admin portal's login page is rate-limited like Matrix /login (config/admin_site.py):
per address on every attempt, per account on failed ones, sharing the buckets of
Matrix /login; a limited attempt is answered 429 without its password being checked.

Buckets refill at a rate too slow to matter here, so no test depends on timing.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from tests.conftest import MatrixTestClient

LOGIN = "/admin/login/?next=/admin/"
BURST = 5


@pytest.fixture
def ratelimited(settings: Any) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {action: (0.0001, BURST) for action in settings.RATELIMITS}


@pytest.fixture
def superuser(db: None) -> User:
    User.objects.create_superuser("root", "root password")
    return User.objects.get(localpart="root")


def log_in(client: Client, username: str, password: str, ip: str = "10.0.0.1") -> Any:
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip
    )


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def assert_limited(response: Any) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "Too many login attempts" in response.content.decode()
    # The ordinary login form stays on the page, to try again later.
    assert 'id="login-form"' in response.content.decode()


@pytest.mark.usefixtures("ratelimited")
def test_failed_logins_are_limited_per_account_across_addresses(superuser: User) -> None:
    client = Client()
    for n in range(BURST):
        failed = log_in(client, "root", "wrong", ip=f"10.0.0.{n}")
        assert failed.status_code == 200
        assert "password for a staff account" in failed.content.decode()

    limited = log_in(client, "root", "root password", ip="10.0.1.1")

    assert_limited(limited)
    assert not logged_in(client)


@pytest.mark.usefixtures("ratelimited")
def test_logins_are_limited_per_address_across_accounts(superuser: User) -> None:
    client = Client()
    for n in range(BURST):
        assert log_in(client, f"nobody{n}", "wrong").status_code == 200

    assert_limited(log_in(client, "root", "root password"))
    assert not logged_in(client)
    # Another address still gets in.
    assert log_in(client, "root", "root password", ip="10.0.0.2").status_code == 302
    assert logged_in(client)


@pytest.mark.usefixtures("ratelimited")
def test_a_limited_attempt_does_not_check_the_password(superuser: User) -> None:
    client = Client()
    for n in range(BURST):
        log_in(client, "root", "wrong", ip=f"10.0.0.{n}")

    with mock.patch.object(User, "check_password", autospec=True) as check_password:
        assert_limited(log_in(client, "root", "wrong", ip="10.0.2.1"))
        assert_limited(log_in(client, "root", "root password", ip="10.0.2.2"))

    check_password.assert_not_called()


@pytest.mark.usefixtures("ratelimited")
def test_successful_logins_do_not_count_against_the_account(superuser: User) -> None:
    for n in range(BURST + 2):
        client = Client()
        assert log_in(client, "root", "root password", ip=f"10.0.0.{n}").status_code == 302
        assert logged_in(client)


@pytest.mark.usefixtures("ratelimited")
def test_admin_and_matrix_logins_share_the_failed_login_budget(
    superuser: User, api: MatrixTestClient
) -> None:
    # Both check the same password: alternating between them gains an attacker nothing.
    client = Client()
    for n in range(BURST):
        log_in(client, "root", "wrong", ip=f"10.0.0.{n}")

    matrix = api.client.post(
        "/_matrix/client/v3/login",
        {"type": "m.login.password", "user": "root", "password": "root password"},
        content_type="application/json",
        REMOTE_ADDR="10.0.3.1",
    )

    assert matrix.status_code == 429
    assert matrix.json()["errcode"] == "M_LIMIT_EXCEEDED"


def test_nothing_is_limited_when_rate_limiting_is_off(superuser: User, settings: Any) -> None:
    settings.RATELIMIT_ENABLED = False
    client = Client()

    for _ in range(4 * BURST):
        assert log_in(client, "root", "wrong").status_code == 200

    assert log_in(client, "root", "root password").status_code == 302
    assert logged_in(client)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("ratelimited")
def test_attempts_sent_at_once_check_no_more_passwords_than_the_burst(db: None) -> None:
    User.objects.create_superuser("root", "root password")
    threads = 12
    barrier = threading.Barrier(threads)
    statuses: list[int] = []
    checked: list[str] = []
    real_check_password = User.check_password

    def slow_check_password(user: User, raw: str) -> bool:
        # Slow as argon2 is, so that every attempt is in flight at once.
        checked.append(raw)
        time.sleep(0.05)
        return real_check_password(user, raw)

    def attempt(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            statuses.append(log_in(Client(), "root", f"guess {n}", ip=f"10.0.4.{n}").status_code)
        finally:
            connection.close()

    with mock.patch.object(User, "check_password", slow_check_password):
        workers = [threading.Thread(target=attempt, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)

    assert len(statuses) == threads
    assert len(checked) == BURST
    assert sorted(statuses) == [200] * BURST + [429] * (threads - BURST)
