"""Shared-secret registration, compatible with Synapse's /_synapse/admin/v1/register.

The MAC is HMAC-SHA1, keyed with the shared secret, over
``nonce NUL username NUL password NUL ("admin" | "notadmin") [NUL user_type]``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from accounts.models import User
from tests.accounts.helpers import whoami
from tests.conftest import MatrixTestClient, user_id

PATH = "/_synapse/admin/v1/register"
SECRET = "a shared secret"


@pytest.fixture
def secret(settings: Any) -> str:
    settings.REGISTRATION_SHARED_SECRET = SECRET
    return SECRET


def mac(
    nonce: str, username: str, password: str, admin: bool, user_type: str | None = None
) -> str:
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    if user_type:
        parts.append(user_type)
    message = b"\x00".join(p.encode() for p in parts)
    return hmac.new(SECRET.encode(), message, hashlib.sha1).hexdigest()


def nonce(api: MatrixTestClient) -> str:
    response = api.get(PATH)
    assert response.status == 200, response.body
    return str(response.body["nonce"])


def register(
    api: MatrixTestClient, username: str, password: str, admin: bool = False, **extra: Any
) -> Any:
    n = nonce(api)
    body = {
        "nonce": n,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": mac(n, username, password, admin, extra.get("user_type")),
        **extra,
    }
    return api.post(PATH, body)


@pytest.mark.usefixtures("secret")
def test_register_with_a_correct_mac(api: MatrixTestClient) -> None:
    response = register(api, "carol", "carol pw", displayname="Carol")

    assert response.status == 200, response.body
    assert response.body["user_id"] == user_id("carol")
    assert response.body["device_id"]
    assert whoami(api, response.body["access_token"]).body["user_id"] == user_id("carol")
    assert api.login("carol", "carol pw").status == 200
    assert api.get(f"profile/{user_id('carol')}/displayname").body == {"displayname": "Carol"}
    assert not User.objects.get(localpart="carol").is_staff


@pytest.mark.usefixtures("secret")
def test_admin_makes_a_server_admin(api: MatrixTestClient) -> None:
    response = register(api, "root", "root pw", admin=True)

    assert response.status == 200
    user = User.objects.get(localpart="root")
    assert user.is_staff
    assert user.is_superuser


@pytest.mark.usefixtures("secret")
def test_the_user_type_is_part_of_the_mac(api: MatrixTestClient) -> None:
    assert register(api, "carol", "pw", user_type="bot").status == 200

    n = nonce(api)
    response = api.post(
        PATH,
        {
            "nonce": n,
            "username": "dave",
            "password": "pw",
            "user_type": "bot",
            "mac": mac(n, "dave", "pw", False),
        },
    )
    assert response.status == 403
    assert not User.objects.filter(localpart="dave").exists()


@pytest.mark.usefixtures("secret")
def test_a_wrong_mac_is_forbidden(api: MatrixTestClient) -> None:
    n = nonce(api)

    response = api.post(
        PATH,
        {"nonce": n, "username": "carol", "password": "pw", "mac": mac(n, "carol", "pw", True)},
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert not User.objects.filter(localpart="carol").exists()


@pytest.mark.usefixtures("secret")
def test_a_nonce_is_single_use(api: MatrixTestClient) -> None:
    n = nonce(api)
    body = {"nonce": n, "username": "carol", "password": "pw", "mac": mac(n, "carol", "pw", False)}
    assert api.post(PATH, body).status == 200

    replay = api.post(PATH, {**body, "username": "dave", "mac": mac(n, "dave", "pw", False)})

    assert replay.status == 400
    assert replay.errcode == "M_UNKNOWN"
    assert not User.objects.filter(localpart="dave").exists()


@pytest.mark.usefixtures("secret")
def test_an_unknown_nonce_is_refused(api: MatrixTestClient) -> None:
    response = api.post(
        PATH,
        {
            "nonce": "made-up",
            "username": "carol",
            "password": "pw",
            "mac": mac("made-up", "carol", "pw", False),
        },
    )

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"
    assert not User.objects.filter(localpart="carol").exists()


@pytest.mark.usefixtures("secret")
def test_a_taken_username_is_refused(api: MatrixTestClient) -> None:
    assert register(api, "carol", "pw").status == 200

    response = register(api, "carol", "other")

    assert response.status == 400
    assert response.errcode == "M_USER_IN_USE"
    assert api.login("carol", "pw").status == 200


@pytest.mark.usefixtures("secret")
@pytest.mark.parametrize("username", ["not valid", "carol-\n"])
def test_an_invalid_username_is_refused(api: MatrixTestClient, username: str) -> None:
    response = register(api, username, "pw")

    assert response.status == 400
    assert response.errcode == "M_INVALID_USERNAME"


@pytest.mark.usefixtures("secret")
def test_missing_fields_are_missing_params(api: MatrixTestClient) -> None:
    response = api.post(PATH, {"nonce": nonce(api), "username": "carol"})

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


def test_disabled_without_a_shared_secret(api: MatrixTestClient, settings: Any) -> None:
    settings.REGISTRATION_SHARED_SECRET = ""

    get = api.get(PATH)
    post = api.post(PATH, {"nonce": "n", "username": "carol", "password": "pw", "mac": "00"})

    for response in (get, post):
        assert response.status == 400
        assert response.errcode == "M_FORBIDDEN"
    assert not User.objects.filter(localpart="carol").exists()


@pytest.mark.usefixtures("secret")
def test_works_when_public_registration_is_closed(api: MatrixTestClient, settings: Any) -> None:
    settings.REGISTRATION = "closed"

    assert register(api, "carol", "pw").status == 200
