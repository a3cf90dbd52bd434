"""POST /login/get_token and the m.login.token login type (Client-Server API, "Login")."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import LoginToken, User
from accounts.services import login_tokens
from tests.accounts.helpers import database_dump, password_auth, whoami
from tests.conftest import MatrixTestClient, Persona

GET_TOKEN = "/_matrix/client/v1/login/get_token"


def get_token(api: MatrixTestClient, persona: Persona) -> dict[str, Any]:
    first = api.post(GET_TOKEN, {}, token=persona.access_token)
    assert first.status == 401, first.body
    assert first.body["flows"] == [{"stages": ["m.login.password"]}]
    done = api.post(
        GET_TOKEN,
        {"auth": password_auth(persona, first.body["session"])},
        token=persona.access_token,
    )
    assert done.status == 200, done.body
    return done.body


def token_login(api: MatrixTestClient, token: Any, **extra: Any) -> Any:
    return api.post("login", {"type": "m.login.token", "token": token, **extra})


def test_get_token_needs_uia_and_answers_a_token(api: MatrixTestClient, alice: Persona) -> None:
    body = get_token(api, alice)

    assert isinstance(body["login_token"], str)
    assert body["login_token"]
    assert body["expires_in_ms"] == 120000


def test_get_token_needs_an_access_token(api: MatrixTestClient) -> None:
    response = api.post(GET_TOKEN, {})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_get_token_refuses_a_wrong_password(api: MatrixTestClient, alice: Persona) -> None:
    first = api.post(GET_TOKEN, {}, token=alice.access_token)
    wrong = api.post(
        GET_TOKEN,
        {"auth": password_auth(alice, first.body["session"], password="nope")},
        token=alice.access_token,
    )

    assert wrong.status == 401
    assert wrong.errcode == "M_FORBIDDEN"
    assert LoginToken.objects.count() == 0


def test_each_token_needs_its_own_uia(api: MatrixTestClient, alice: Persona) -> None:
    first = api.post(GET_TOKEN, {}, token=alice.access_token)
    auth = password_auth(alice, first.body["session"])
    assert api.post(GET_TOKEN, {"auth": auth}, token=alice.access_token).status == 200

    again = api.post(GET_TOKEN, {"auth": auth}, token=alice.access_token)

    assert again.status == 400
    assert again.errcode == "M_UNKNOWN"
    assert LoginToken.objects.count() == 1


def test_the_token_logs_in_once_as_the_same_user(api: MatrixTestClient, alice: Persona) -> None:
    token = get_token(api, alice)["login_token"]

    login = token_login(api, token, initial_device_display_name="phone")

    assert login.status == 200, login.body
    assert login.body["user_id"] == alice.user_id
    assert login.body["device_id"] != alice.device_id
    assert whoami(api, login.body["access_token"]).body["user_id"] == alice.user_id
    replay = token_login(api, token)
    assert replay.status == 403
    assert replay.errcode == "M_FORBIDDEN"


def test_the_token_is_stored_only_as_a_digest(api: MatrixTestClient, alice: Persona) -> None:
    token = get_token(api, alice)["login_token"]

    assert token not in database_dump()


def test_an_unknown_token_is_forbidden(api: MatrixTestClient, alice: Persona) -> None:
    response = token_login(api, "mlt_not-a-token")

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_an_expired_token_is_forbidden(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = get_token(api, alice)["login_token"]
    later = login_tokens.now_ms() + login_tokens.LOGIN_TOKEN_LIFETIME_MS + 1
    monkeypatch.setattr(login_tokens, "now_ms", lambda: later)

    response = token_login(api, token)

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_a_missing_or_mistyped_token_is_bad_json(api: MatrixTestClient) -> None:
    missing = api.post("login", {"type": "m.login.token"})
    mistyped = token_login(api, 42)

    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    assert (mistyped.status, mistyped.errcode) == (400, "M_BAD_JSON")


def test_a_bad_field_does_not_spend_the_token(api: MatrixTestClient, alice: Persona) -> None:
    token = get_token(api, alice)["login_token"]

    bad = token_login(api, token, device_id=7)

    assert bad.status == 400
    assert token_login(api, token).status == 200


def test_a_deactivated_users_token_does_not_log_in(api: MatrixTestClient, alice: Persona) -> None:
    token = get_token(api, alice)["login_token"]
    User.objects.filter(localpart="alice").update(is_active=False)

    response = token_login(api, token)

    assert response.status == 403
    assert response.errcode == "M_USER_DEACTIVATED"


def test_the_capability_says_enabled(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("capabilities", token=alice.access_token)

    assert response.body["capabilities"]["m.get_login_token"] == {"enabled": True}
