"""Two-factor login for the admin portal (config/admin_mfa.py): an operator enrols TOTP
at /admin/mfa/ and from then on /admin/login/ asks for a code after the password.

Codes are computed here from the secret the page shows, as an authenticator app would;
the server accepts the previous and next 30-second code too, so a test that crosses a
period boundary still passes.
"""

from __future__ import annotations

import re
import time
from typing import Any
from unittest import mock

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.test import Client

from accounts.models import User
from operators.models import AuditEntry

LOGIN = "/admin/login/?next=/admin/"
CODE_PAGE = "/admin/login/code/"
PASSWORD = "root password"


@pytest.fixture
def operator(db: None) -> User:
    return User.objects.create_superuser("root", PASSWORD)


def totp_now(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def log_in(client: Client, password: str = PASSWORD) -> Any:
    return client.post(LOGIN, {"username": "root", "password": password, "next": "/admin/"})


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def enrol(operator: User, password: str = PASSWORD) -> tuple[str, list[str]]:
    """Turn TOTP on through the portal page; the secret and the recovery codes shown."""
    client = Client()
    client.force_login(operator)
    page = client.get("/admin/mfa/").content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert secret is not None
    done = client.post(
        "/admin/mfa/", {"action": "activate", "code": totp_now(secret[1]), "password": password}
    )
    assert done.status_code == 200
    codes = re.findall(r"^(\d{8})$", done.content.decode(), re.MULTILINE)
    return secret[1], codes


def test_enrolling_stores_an_encrypted_secret_and_recovery_codes(operator: User) -> None:
    secret, codes = enrol(operator)

    totp = Authenticator.objects.get(user=operator, type=Authenticator.Type.TOTP)
    assert secret not in str(totp.data)  # encrypted at rest
    assert totp.wrap().validate_code(totp_now(secret))
    assert len(codes) == 10
    assert Authenticator.objects.filter(
        user=operator, type=Authenticator.Type.RECOVERY_CODES
    ).exists()


def test_a_wrong_code_enrols_nothing(operator: User) -> None:
    client = Client()
    client.force_login(operator)
    client.get("/admin/mfa/")

    response = client.post(
        "/admin/mfa/", {"action": "activate", "code": "000000", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "Incorrect code" in response.content.decode()
    assert not Authenticator.objects.filter(user=operator).exists()


def test_without_totp_the_password_alone_logs_in(operator: User) -> None:
    client = Client()

    response = log_in(client)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert logged_in(client)


def test_with_totp_the_password_leads_to_the_code_page_and_the_code_logs_in(
    operator: User,
) -> None:
    secret, _ = enrol(operator)
    client = Client()

    after_password = log_in(client)

    assert after_password.status_code == 302
    assert after_password["Location"] == CODE_PAGE
    assert not logged_in(client)
    page = client.get(CODE_PAGE)
    assert page.status_code == 200
    assert 'id="mfa-form"' in page.content.decode()

    wrong = client.post(CODE_PAGE, {"code": "000000"})
    assert wrong.status_code == 200
    assert "Incorrect code" in wrong.content.decode()
    assert not logged_in(client)

    right = client.post(CODE_PAGE, {"code": totp_now(secret)})
    assert right.status_code == 302
    assert right["Location"] == "/admin/"
    assert logged_in(client)


def test_a_wrong_password_never_reaches_the_code_page(operator: User) -> None:
    enrol(operator)
    client = Client()

    response = log_in(client, "wrong")

    assert response.status_code == 200
    assert client.get(CODE_PAGE)["Location"] == "/admin/login/"


def test_a_code_is_accepted_once(operator: User) -> None:
    secret, _ = enrol(operator)
    code = totp_now(secret)
    first, second = Client(), Client()
    log_in(first)
    log_in(second)

    assert first.post(CODE_PAGE, {"code": code}).status_code == 302
    replay = second.post(CODE_PAGE, {"code": code})

    assert replay.status_code == 200
    assert not logged_in(second)


def test_a_recovery_code_logs_in_once(operator: User) -> None:
    _, codes = enrol(operator)
    first, second = Client(), Client()

    log_in(first)
    assert first.post(CODE_PAGE, {"code": codes[0]}).status_code == 302
    assert logged_in(first)

    log_in(second)
    assert second.post(CODE_PAGE, {"code": codes[0]}).status_code == 200
    assert not logged_in(second)
    assert second.post(CODE_PAGE, {"code": codes[1]}).status_code == 302


def test_the_code_page_without_a_password_first_sends_to_the_login(operator: User) -> None:
    enrol(operator)

    response = Client().post(CODE_PAGE, {"code": "123456"})

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"


def test_a_pending_login_expires(operator: User) -> None:
    secret, _ = enrol(operator)
    client = Client()
    log_in(client)

    later = time.time() + 301
    with mock.patch("config.admin_mfa.time.time", return_value=later):
        response = client.post(CODE_PAGE, {"code": totp_now(secret)})

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert not logged_in(client)


def test_an_operator_deactivated_between_the_steps_is_not_logged_in(operator: User) -> None:
    secret, _ = enrol(operator)
    client = Client()
    log_in(client)
    User.objects.filter(pk=operator.pk).update(is_active=False)

    response = client.post(CODE_PAGE, {"code": totp_now(secret)})

    assert response["Location"] == "/admin/login/"
    assert not logged_in(client)


def test_failed_codes_are_rate_limited(operator: User, settings: Any) -> None:
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "5/5m/key"}
    secret, _ = enrol(operator)
    client = Client()
    log_in(client)
    for _ in range(5):
        assert "Incorrect code" in client.post(CODE_PAGE, {"code": "000000"}).content.decode()

    limited = client.post(CODE_PAGE, {"code": totp_now(secret)})

    assert "Too many failed login attempts" in limited.content.decode()
    assert not logged_in(client)


def test_turning_it_off_restores_the_password_login(operator: User) -> None:
    enrol(operator)
    client = Client()
    client.force_login(operator)

    assert (
        client.post("/admin/mfa/", {"action": "deactivate", "password": PASSWORD}).status_code
        == 302
    )

    assert not Authenticator.objects.filter(user=operator).exists()
    fresh = Client()
    assert log_in(fresh)["Location"] == "/admin/"
    assert logged_in(fresh)


def test_new_recovery_codes_replace_the_old_ones(operator: User) -> None:
    _, old = enrol(operator)
    client = Client()
    client.force_login(operator)

    page = client.post(
        "/admin/mfa/", {"action": "regenerate", "password": PASSWORD}
    ).content.decode()
    new = re.findall(r"^(\d{8})$", page, re.MULTILINE)

    assert len(new) == 10
    assert set(new).isdisjoint(old)
    fresh = Client()
    log_in(fresh)
    assert fresh.post(CODE_PAGE, {"code": old[0]}).status_code == 200
    assert fresh.post(CODE_PAGE, {"code": new[0]}).status_code == 302


def test_changes_need_the_password_again(operator: User) -> None:
    client = Client()
    client.force_login(operator)
    page = client.get("/admin/mfa/").content.decode()
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page)
    assert secret is not None

    refused = client.post(
        "/admin/mfa/", {"action": "activate", "code": totp_now(secret[1]), "password": "wrong"}
    )

    assert "Your password was not right" in refused.content.decode()
    assert not Authenticator.objects.filter(user=operator).exists()


def test_the_mfa_page_needs_a_logged_in_operator(operator: User) -> None:
    response = Client().get("/admin/mfa/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_turning_it_on_and_off_is_in_the_audit_log(operator: User) -> None:
    enrol(operator)
    client = Client()
    client.force_login(operator)
    client.post("/admin/mfa/", {"action": "deactivate", "password": PASSWORD})

    entries = AuditEntry.objects.order_by("id").values_list("actor", "action", "target", "via")
    assert list(entries) == [
        (operator.user_id, "mfa.enable", operator.user_id, "portal"),
        (operator.user_id, "mfa.disable", operator.user_id, "portal"),
    ]


def test_a_superuser_removes_a_lost_second_factor(operator: User) -> None:
    colleague = User.objects.create_user("colleague", "colleague pw", is_staff=True)
    enrol(colleague, "colleague pw")
    totp = Authenticator.objects.get(user=colleague, type=Authenticator.Type.TOTP)
    client = Client()
    client.force_login(operator)
    assert client.get("/admin/mfa/authenticator/add/").status_code == 403

    response = client.post(f"/admin/mfa/authenticator/{totp.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    # The recovery codes went with it: the colleague logs in with the password alone.
    assert not Authenticator.objects.filter(user=colleague).exists()
    fresh = Client()
    fresh.post(LOGIN, {"username": "colleague", "password": "colleague pw", "next": "/admin/"})
    assert logged_in(fresh)
    entry = AuditEntry.objects.get(action="mfa.remove")
    assert (entry.actor, entry.target, entry.details) == (
        operator.user_id,
        colleague.user_id,
        {"type": "totp"},
    )
