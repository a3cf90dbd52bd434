"""POST /register, GET /register/available and token-authenticated registration.

Client-Server API, "Account registration" and "User-Interactive Authentication API".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from accounts.clock import now_ms
from accounts.models import RegistrationToken, UIASession, User
from accounts.services import uia
from accounts.tasks import purge_expired_auth_state
from tests.accounts.helpers import whoami
from tests.conftest import MatrixTestClient, Persona, user_id


def start(api: MatrixTestClient, body: dict[str, Any], path: str = "register") -> str:
    """The first, unauthenticated request of a registration: returns the UIA session."""
    response = api.post(path, body)
    assert response.status == 401, response.body
    return str(response.body["session"])


def dummy(session: str) -> dict[str, str]:
    return {"type": "m.login.dummy", "session": session}


# --- The UIA flow -------------------------------------------------------------------


def test_first_request_without_auth_answers_401_with_the_dummy_flow_first(
    api: MatrixTestClient,
) -> None:
    response = api.post("register", {"username": "carol", "password": "pw-carol"})

    assert response.status == 401
    # The email flow beside it is optional (tests/accounts/test_threepids_flows.py).
    assert response.body["flows"] == [
        {"stages": ["m.login.dummy"]},
        {"stages": ["m.login.email.identity"]},
    ]
    assert response.body["params"] == {}
    assert isinstance(response.body["session"], str)
    assert response.body["session"]
    assert not User.objects.filter(localpart="carol").exists()


def test_completing_the_dummy_stage_registers_and_logs_in(api: MatrixTestClient) -> None:
    body = {"username": "carol", "password": "pw-carol"}
    session = start(api, body)

    response = api.post("register", {**body, "auth": dummy(session)})

    assert response.status == 200, response.body
    assert response.body["user_id"] == user_id("carol")
    assert response.body["device_id"]
    assert "refresh_token" not in response.body
    assert "expires_in_ms" not in response.body
    me = whoami(api, response.body["access_token"])
    assert me.status == 200
    assert me.body["user_id"] == user_id("carol")
    assert me.body["device_id"] == response.body["device_id"]
    assert api.login("carol", "pw-carol").status == 200


def test_a_dummy_stage_without_a_session_still_completes(api: MatrixTestClient) -> None:
    response = api.post(
        "register",
        {"username": "carol", "password": "pw", "auth": {"type": "m.login.dummy"}},
    )

    assert response.status == 200, response.body
    assert User.objects.filter(localpart="carol").exists()


def test_retrying_a_completed_session_answers_as_its_completion_did(
    api: MatrixTestClient,
) -> None:
    # sytest "registration is idempotent": a retry with the session that registered
    # answers with the same user (logged in again), and registers nobody else.
    session = start(api, {"username": "carol", "password": "pw"})
    first = api.post("register", {"username": "carol", "password": "pw", "auth": dummy(session)})
    assert first.status == 200, first.body

    retry = api.post("register", {"username": "dave", "password": "pw", "auth": dummy(session)})

    assert retry.status == 200, retry.body
    assert retry.body["user_id"] == user_id("carol")
    assert whoami(api, retry.body["access_token"]).body["user_id"] == user_id("carol")
    assert not User.objects.filter(localpart="dave").exists()
    assert User.objects.count() == 1


def test_retrying_without_a_username_gives_the_same_generated_user(
    api: MatrixTestClient,
) -> None:
    session = start(api, {"password": "pw"})
    first = api.post("register", {"password": "pw", "auth": dummy(session)})

    retry = api.post("register", {"password": "pw", "auth": dummy(session)})

    assert retry.status == 200, retry.body
    assert retry.body["user_id"] == first.body["user_id"]
    assert User.objects.count() == 1


def test_a_session_remembers_the_parameters_of_its_first_request(
    api: MatrixTestClient,
) -> None:
    # sytest "registration remembers parameters": the completing request sends only auth.
    session = start(
        api,
        {
            "username": "carol",
            "password": "pw-carol",
            "device_id": "XYZZY",
            "initial_device_display_name": "display_name",
        },
    )

    response = api.post("register", {"auth": dummy(session)})

    assert response.status == 200, response.body
    assert response.body["user_id"] == user_id("carol")
    assert response.body["device_id"] == "XYZZY"
    device = api.get("devices/XYZZY", token=response.body["access_token"])
    assert device.body["display_name"] == "display_name"
    assert api.login("carol", "pw-carol").status == 200
    stored = UIASession.objects.get(session_id=session).results
    assert "pw-carol" not in str(stored)


def test_inhibit_login_from_the_first_request_is_remembered(api: MatrixTestClient) -> None:
    # sytest "registration with inhibit_login inhibits login".
    session = start(api, {"username": "carol", "password": "pw", "inhibit_login": True})

    response = api.post("register", {"auth": dummy(session)})
    retry = api.post("register", {"auth": dummy(session)})

    for answer in (response, retry):
        assert answer.status == 200, answer.body
        assert answer.body["user_id"] == user_id("carol")
        assert "device_id" not in answer.body
        assert "access_token" not in answer.body
    assert User.objects.get(localpart="carol").devices.count() == 0


def test_an_unknown_session_is_rejected(api: MatrixTestClient) -> None:
    response = api.post("register", {"username": "carol", "auth": dummy("no-such-session")})

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"
    assert not User.objects.filter(localpart="carol").exists()


def test_an_expired_session_is_rejected(api: MatrixTestClient) -> None:
    session = start(api, {"username": "carol"})
    UIASession.objects.filter(session_id=session).update(
        created_at_ms=now_ms() - uia.SESSION_LIFETIME_MS - 1
    )

    response = api.post("register", {"username": "carol", "auth": dummy(session)})

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"
    assert not User.objects.filter(localpart="carol").exists()


def test_a_stage_not_offered_is_refused_with_the_uia_body(api: MatrixTestClient) -> None:
    session = start(api, {"username": "carol"})

    response = api.post(
        "register",
        {"username": "carol", "auth": {"type": "m.login.password", "session": session}},
    )

    assert response.status == 401
    assert response.errcode == "M_UNRECOGNIZED"
    assert response.body["session"] == session
    assert response.body["flows"][0] == {"stages": ["m.login.dummy"]}
    assert not User.objects.filter(localpart="carol").exists()


def test_auth_must_be_an_object(api: MatrixTestClient) -> None:
    response = api.post("register", {"username": "carol", "auth": "dummy"})

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"


# --- What the registration creates ---------------------------------------------------


def test_inhibit_login_creates_the_user_but_no_device(api: MatrixTestClient) -> None:
    body = {"username": "carol", "password": "pw", "inhibit_login": True}
    session = start(api, body)

    response = api.post("register", {**body, "auth": dummy(session)})

    assert response.status == 200
    assert response.body["user_id"] == user_id("carol")
    assert "access_token" not in response.body
    assert "device_id" not in response.body
    assert "refresh_token" not in response.body
    carol = User.objects.get(localpart="carol")
    assert carol.devices.count() == 0
    assert carol.access_tokens.count() == 0


def test_device_id_and_initial_display_name_are_used(api: MatrixTestClient) -> None:
    carol = api.register(
        "carol", device_id="CAROLPHONE", initial_device_display_name="Carol's phone"
    )

    assert carol.device_id == "CAROLPHONE"
    device = api.get("devices/CAROLPHONE", token=carol.access_token)
    assert device.status == 200
    assert device.body["display_name"] == "Carol's phone"


def test_refresh_token_asks_for_an_expiring_access_token(
    api: MatrixTestClient, settings: Any
) -> None:
    settings.ACCESS_TOKEN_LIFETIME_MS = 120_000
    body = {"username": "carol", "password": "pw", "refresh_token": True}
    session = start(api, body)

    response = api.post("register", {**body, "auth": dummy(session)})

    assert response.status == 200
    assert response.body["refresh_token"]
    assert response.body["expires_in_ms"] == 120_000
    refreshed = api.post("refresh", {"refresh_token": response.body["refresh_token"]})
    assert refreshed.status == 200


def test_the_username_is_lower_cased(api: MatrixTestClient) -> None:
    carol = api.register("CaRoL")

    assert carol.user_id == user_id("carol")
    assert User.objects.filter(localpart="carol").exists()
    assert api.login("carol", carol.password).status == 200


def test_a_full_user_id_on_this_server_names_its_localpart(api: MatrixTestClient) -> None:
    carol = api.register(user_id("carol"))

    assert carol.user_id == user_id("carol")


def test_without_a_username_a_localpart_is_generated(api: MatrixTestClient) -> None:
    session = start(api, {"password": "pw"})

    response = api.post("register", {"password": "pw", "auth": dummy(session)})

    assert response.status == 200
    localpart = response.body["user_id"][1:].split(":")[0]
    assert User.objects.filter(localpart=localpart).exists()


def test_the_new_user_has_their_localpart_as_display_name(api: MatrixTestClient) -> None:
    carol = api.register("carol")

    assert api.get(f"profile/{carol.user_id}").body == {"displayname": "carol"}


# --- Usernames that cannot be had ------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    ["caröl", "car ol", "car:ol", "@carol:elsewhere.example", "c" * 300, "carol-\n", "carol\n"],
)
def test_an_invalid_username_is_refused_before_uia(api: MatrixTestClient, username: str) -> None:
    response = api.post("register", {"username": username, "password": "pw"})

    assert response.status == 400
    assert response.errcode == "M_INVALID_USERNAME"
    assert User.objects.count() == 0


def test_a_full_user_id_with_a_trailing_newline_is_refused(api: MatrixTestClient) -> None:
    # A ``$`` anchor matches before a final newline; the grammar must not.
    response = api.post("register", {"username": user_id("carol") + "\n", "password": "pw"})

    assert response.status == 400
    assert response.errcode == "M_INVALID_USERNAME"
    assert api.get("register/available?username=carol%0A").errcode == "M_INVALID_USERNAME"
    assert User.objects.count() == 0


def test_the_admin_api_cannot_create_a_user_whose_id_ends_in_a_newline(
    api: MatrixTestClient, alice: Persona
) -> None:
    User.objects.filter(localpart="alice").update(is_staff=True, is_superuser=True)
    target = quote(f"@carol\n:{settings.SERVER_NAME}", safe="@:")

    response = api.request(
        "PUT", f"/_synapse/admin/v2/users/{target}", {"password": "pw"}, token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert not User.objects.filter(localpart__startswith="carol").exists()


def test_a_taken_username_is_refused_before_uia(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("register", {"username": "Alice", "password": "pw"})

    assert response.status == 400
    assert response.errcode == "M_USER_IN_USE"
    assert "session" not in response.body


def test_a_username_taken_during_uia_is_refused_on_completion(api: MatrixTestClient) -> None:
    session = start(api, {"username": "carol", "password": "first"})
    api.register("carol", password="second")

    response = api.post(
        "register", {"username": "carol", "password": "first", "auth": dummy(session)}
    )

    assert response.status == 400
    assert response.errcode == "M_USER_IN_USE"
    assert api.login("carol", "second").status == 200


def test_an_empty_password_is_refused_before_uia(api: MatrixTestClient) -> None:
    response = api.post("register", {"username": "carol", "password": ""})

    assert response.status == 400
    assert response.errcode == "M_WEAK_PASSWORD"
    assert not User.objects.filter(localpart="carol").exists()


def test_username_and_password_must_be_strings(api: MatrixTestClient) -> None:
    for body in ({"username": 7}, {"username": "carol", "password": ["pw"]}):
        response = api.post("register", body)
        assert response.status == 400
        assert response.errcode == "M_BAD_JSON"
    assert User.objects.count() == 0


# --- GET /register/available ---------------------------------------------------------


def test_available_for_a_free_username(api: MatrixTestClient) -> None:
    response = api.get("register/available?username=carol")

    assert response.status == 200
    assert response.body == {"available": True}


def test_available_answers_user_in_use_for_a_taken_one(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = api.get("register/available?username=ALICE")

    assert response.status == 400
    assert response.errcode == "M_USER_IN_USE"


def test_available_answers_invalid_username(api: MatrixTestClient) -> None:
    response = api.get("register/available?username=not%20valid")

    assert response.status == 400
    assert response.errcode == "M_INVALID_USERNAME"


def test_available_needs_a_username(api: MatrixTestClient) -> None:
    response = api.get("register/available")

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


# --- Kinds and registration modes ------------------------------------------------------


def test_guest_registration_is_forbidden(api: MatrixTestClient) -> None:
    response = api.post("register?kind=guest", {})

    assert response.status == 403
    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"
    assert User.objects.count() == 0


def test_an_unknown_kind_is_an_invalid_param(api: MatrixTestClient) -> None:
    response = api.post("register?kind=robot", {"username": "carol"})

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"


def test_closed_registration_is_forbidden(api: MatrixTestClient, settings: Any) -> None:
    settings.REGISTRATION = "closed"

    response = api.post("register", {"username": "carol", "password": "pw"})

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert User.objects.count() == 0


# --- Token-authenticated registration (TRELLIS_REGISTRATION=token) ----------------------


@pytest.fixture
def token_mode(settings: Any) -> None:
    settings.REGISTRATION = "token"


def token_auth(session: str, token: str) -> dict[str, str]:
    return {"type": "m.login.registration_token", "token": token, "session": session}


def register_with_token(api: MatrixTestClient, username: str, token: str) -> Any:
    body = {"username": username, "password": "pw"}
    session = start(api, body)
    return api.post("register", {**body, "auth": token_auth(session, token)})


@pytest.mark.usefixtures("token_mode")
def test_token_mode_needs_the_registration_token_in_every_flow(api: MatrixTestClient) -> None:
    response = api.post("register", {"username": "carol", "password": "pw"})

    assert response.status == 401
    assert response.body["flows"] == [
        {"stages": ["m.login.registration_token"]},
        {"stages": ["m.login.registration_token", "m.login.email.identity"]},
    ]


@pytest.mark.usefixtures("token_mode")
def test_token_mode_refuses_the_dummy_stage(api: MatrixTestClient) -> None:
    session = start(api, {"username": "carol"})

    response = api.post("register", {"username": "carol", "auth": dummy(session)})

    assert response.status == 401
    assert response.errcode == "M_UNRECOGNIZED"
    assert not User.objects.filter(localpart="carol").exists()


@pytest.mark.usefixtures("token_mode")
def test_a_valid_token_registers_and_counts_one_use(api: MatrixTestClient) -> None:
    RegistrationToken.objects.create(token="letmein", uses_allowed=3)

    response = register_with_token(api, "carol", "letmein")

    assert response.status == 200, response.body
    assert response.body["user_id"] == user_id("carol")
    token = RegistrationToken.objects.get(token="letmein")
    assert (token.pending, token.completed) == (0, 1)


@pytest.mark.usefixtures("token_mode")
def test_an_unknown_token_fails_the_stage(api: MatrixTestClient) -> None:
    session = start(api, {"username": "carol"})

    response = api.post("register", {"username": "carol", "auth": token_auth(session, "nope")})

    assert response.status == 401
    assert response.errcode == "M_UNAUTHORIZED"
    assert response.body["session"] == session
    assert response.body["completed"] == []
    assert not User.objects.filter(localpart="carol").exists()


@pytest.mark.usefixtures("token_mode")
def test_a_token_is_exhausted_after_uses_allowed(api: MatrixTestClient) -> None:
    RegistrationToken.objects.create(token="once", uses_allowed=1)
    assert register_with_token(api, "carol", "once").status == 200

    second = register_with_token(api, "dave", "once")

    assert second.status == 401
    assert second.errcode == "M_UNAUTHORIZED"
    assert not User.objects.filter(localpart="dave").exists()
    token = RegistrationToken.objects.get(token="once")
    assert (token.pending, token.completed) == (0, 1)


@pytest.mark.usefixtures("token_mode")
def test_an_unlimited_token_keeps_working(api: MatrixTestClient) -> None:
    RegistrationToken.objects.create(token="open", uses_allowed=None)

    for name in ("carol", "dave", "erin"):
        assert register_with_token(api, name, "open").status == 200

    assert RegistrationToken.objects.get(token="open").completed == 3


@pytest.mark.usefixtures("token_mode")
def test_an_expired_token_fails_the_stage(api: MatrixTestClient) -> None:
    RegistrationToken.objects.create(token="stale", expiry_time_ms=now_ms() - 1)

    response = register_with_token(api, "carol", "stale")

    assert response.status == 401
    assert response.errcode == "M_UNAUTHORIZED"
    assert not User.objects.filter(localpart="carol").exists()


@pytest.mark.usefixtures("token_mode")
def test_a_retried_token_stage_reserves_the_token_once(
    api: MatrixTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stage succeeds but the registration fails after it (the name was taken by a
    # concurrent registration); the client retries in the same session with another
    # name. A completed stage is not run again, so the token is reserved only once.
    RegistrationToken.objects.create(token="twice", uses_allowed=2)
    User.objects.create_user("carol", "pw")
    session = start(api, {"username": "dave", "password": "pw"})
    with monkeypatch.context() as race:
        race.setattr("accounts.services.registration.is_localpart_taken", lambda _: False)
        lost = api.post(
            "register",
            {"username": "carol", "password": "pw", "auth": token_auth(session, "twice")},
        )
    assert lost.status == 400
    assert lost.errcode == "M_USER_IN_USE"

    retry = api.post(
        "register", {"username": "dave", "password": "pw", "auth": token_auth(session, "twice")}
    )

    assert retry.status == 200, retry.body
    token = RegistrationToken.objects.get(token="twice")
    assert (token.pending, token.completed) == (0, 1)
    assert register_with_token(api, "erin", "twice").status == 200


@pytest.mark.usefixtures("token_mode")
def test_an_abandoned_reservation_is_released_when_its_session_expires(
    api: MatrixTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    RegistrationToken.objects.create(token="once", uses_allowed=1)
    User.objects.create_user("carol", "pw")
    session = start(api, {"username": "dave", "password": "pw"})
    with monkeypatch.context() as race:
        race.setattr("accounts.services.registration.is_localpart_taken", lambda _: False)
        api.post(
            "register",
            {"username": "carol", "password": "pw", "auth": token_auth(session, "once")},
        )
    assert RegistrationToken.objects.get(token="once").pending == 1
    UIASession.objects.filter(session_id=session).update(
        created_at_ms=now_ms() - uia.SESSION_LIFETIME_MS - 1
    )

    purge_expired_auth_state.delay()

    assert not UIASession.objects.filter(session_id=session).exists()
    assert RegistrationToken.objects.get(token="once").pending == 0
    assert register_with_token(api, "erin", "once").status == 200


@pytest.mark.usefixtures("token_mode")
def test_a_completed_registration_keeps_its_token_use_when_its_session_expires(
    api: MatrixTestClient,
) -> None:
    RegistrationToken.objects.create(token="once", uses_allowed=1)
    body = {"username": "carol", "password": "pw"}
    session = start(api, body)
    assert api.post("register", {**body, "auth": token_auth(session, "once")}).status == 200
    UIASession.objects.filter(session_id=session).update(
        created_at_ms=now_ms() - uia.SESSION_LIFETIME_MS - 1
    )

    purge_expired_auth_state.delay()

    assert not UIASession.objects.filter(session_id=session).exists()
    token = RegistrationToken.objects.get(token="once")
    assert (token.pending, token.completed) == (0, 1)
    assert register_with_token(api, "erin", "once").status == 401


@pytest.mark.usefixtures("token_mode")
def test_token_validity_endpoint(api: MatrixTestClient) -> None:
    RegistrationToken.objects.create(token="good", uses_allowed=1)
    RegistrationToken.objects.create(token="used", uses_allowed=1, completed=1)
    RegistrationToken.objects.create(token="old", expiry_time_ms=now_ms() - 1)
    path = "/_matrix/client/v1/register/m.login.registration_token/validity?token="

    assert api.get(path + "good").body == {"valid": True}
    for token in ("used", "old", "unknown"):
        response = api.get(path + token)
        assert response.status == 200
        assert response.body == {"valid": False}


@pytest.mark.usefixtures("token_mode")
def test_token_validity_needs_a_token(api: MatrixTestClient) -> None:
    response = api.get("/_matrix/client/v1/register/m.login.registration_token/validity")

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


def test_token_validity_is_forbidden_when_tokens_are_not_in_use(api: MatrixTestClient) -> None:
    RegistrationToken.objects.create(token="good")

    response = api.get(
        "/_matrix/client/v1/register/m.login.registration_token/validity?token=good"
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
