"""The fallback pages (Client-Server API, "Fallback" under UIA, and "Login Fallback")."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import RegistrationToken, UIASession
from tests.conftest import MatrixTestClient, Persona


def fallback_url(auth_type: str) -> str:
    return f"/_matrix/client/v3/auth/{auth_type}/fallback/web"


def start_registration(api: MatrixTestClient, **body: Any) -> str:
    first = api.post("register", {"username": "carol", "password": "correct horse", **body})
    assert first.status == 401, first.body
    return str(first.body["session"])


def test_the_dummy_page_renders_and_its_post_completes_the_stage(
    api: MatrixTestClient, client: Client
) -> None:
    session = start_registration(api)

    page = client.get(fallback_url("m.login.dummy"), {"session": session})
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert b"<form" in page.content
    assert b"onAuthDone" not in page.content

    done = client.post(fallback_url("m.login.dummy"), {"session": session})
    assert done.status_code == 200
    assert b"window.onAuthDone()" in done.content
    assert b'window.opener.postMessage("authDone", "*")' in done.content
    assert UIASession.objects.get(session_id=session).completed == ["m.login.dummy"]

    # The client resubmits with just the session ID, as the spec says.
    finished = api.post(
        "register",
        {"username": "carol", "password": "correct horse", "auth": {"session": session}},
    )
    assert finished.status == 200, finished.body
    assert finished.body["user_id"].startswith("@carol:")


def test_the_registration_token_page_completes_the_stage(
    api: MatrixTestClient, client: Client, settings: Any
) -> None:
    settings.REGISTRATION = "token"
    RegistrationToken.objects.create(token="letmein", uses_allowed=1)
    session = start_registration(api)

    wrong = client.post(
        fallback_url("m.login.registration_token"), {"session": session, "token": "nope"}
    )
    assert wrong.status_code == 200
    assert b"Invalid registration token" in wrong.content
    assert b"onAuthDone" not in wrong.content
    assert UIASession.objects.get(session_id=session).completed == []

    done = client.post(
        fallback_url("m.login.registration_token"), {"session": session, "token": "letmein"}
    )
    assert b"window.onAuthDone()" in done.content
    assert RegistrationToken.objects.get(token="letmein").pending == 1
    finished = api.post(
        "register",
        {"username": "carol", "password": "correct horse", "auth": {"session": session}},
    )
    assert finished.status == 200, finished.body


def test_the_password_page_reauthenticates_the_sessions_user(
    api: MatrixTestClient, client: Client, alice: Persona
) -> None:
    path = "/_matrix/client/v1/login/get_token"
    first = api.post(path, {}, token=alice.access_token)
    session = first.body["session"]

    wrong = client.post(fallback_url("m.login.password"), {"session": session, "password": "x"})
    assert b"Invalid username or password" in wrong.content
    done = client.post(
        fallback_url("m.login.password"), {"session": session, "password": alice.password}
    )
    assert b"window.onAuthDone()" in done.content

    finished = api.post(path, {"auth": {"session": session}}, token=alice.access_token)
    assert finished.status == 200, finished.body
    assert finished.body["login_token"]


@pytest.mark.parametrize("auth_type", ["m.login.recaptcha", "m.login.sso", "m.login.nonsense"])
def test_a_stage_without_a_fallback_is_unrecognized(client: Client, auth_type: str) -> None:
    response = client.get(fallback_url(auth_type), {"session": "anything"})

    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"


def test_a_missing_session_is_a_missing_param(client: Client, db: None) -> None:
    response = client.get(fallback_url("m.login.dummy"))

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_MISSING_PARAM"


def test_an_unknown_session_is_refused(client: Client, db: None) -> None:
    response = client.post(fallback_url("m.login.dummy"), {"session": "no-such-session"})

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_UNKNOWN"


def test_a_stage_the_session_does_not_offer_is_refused(
    api: MatrixTestClient, client: Client, settings: Any
) -> None:
    settings.REGISTRATION = "token"
    session = start_registration(api)

    response = client.post(fallback_url("m.login.dummy"), {"session": session})

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
    assert UIASession.objects.get(session_id=session).completed == []


def test_the_login_fallback_page_renders(client: Client) -> None:
    response = client.get("/_matrix/static/client/login/", {"device_id": "GHTYAJCE"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "window.matrixLogin.onLogin(result[1])" in page
    assert '"/_matrix/client/v3/login"' in page
    assert '"device_id"' in page
    assert "<script src" not in page
    assert "<link" not in page
