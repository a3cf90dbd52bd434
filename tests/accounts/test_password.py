"""POST /account/password (Client-Server API, "Password management")."""

from __future__ import annotations

from accounts.models import Device
from tests.accounts.helpers import password_auth, whoami, with_password_uia
from tests.conftest import MatrixTestClient, Persona


def test_changing_the_password_asks_for_the_old_one(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("account/password", {"new_password": "new pw"}, token=alice.access_token)

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.password"]}]
    assert api.login("alice", alice.password).status == 200


def test_the_new_password_works_and_the_old_one_stops_working(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = with_password_uia(
        api, "POST", "account/password", alice, {"new_password": "new pw"}
    )

    assert response.status == 200
    assert response.body == {}
    old = api.login("alice", alice.password)
    assert old.status == 403
    assert old.errcode == "M_FORBIDDEN"
    assert api.login("alice", "new pw").status == 200


def test_a_wrong_old_password_changes_nothing(api: MatrixTestClient, alice: Persona) -> None:
    first = api.post("account/password", {"new_password": "new pw"}, token=alice.access_token)

    response = api.post(
        "account/password",
        {"new_password": "new pw", "auth": password_auth(alice, first.body["session"], "nope")},
        token=alice.access_token,
    )

    assert response.status == 401
    assert response.errcode == "M_FORBIDDEN"
    assert api.login("alice", alice.password).status == 200
    assert api.login("alice", "new pw").status == 403


def test_other_devices_are_logged_out_by_default(api: MatrixTestClient, alice: Persona) -> None:
    other = api.login("alice", alice.password, device_id="OTHER").body

    response = with_password_uia(
        api, "POST", "account/password", alice, {"new_password": "new pw"}
    )

    assert response.status == 200
    assert whoami(api, other["access_token"]).errcode == "M_UNKNOWN_TOKEN"
    assert not Device.objects.filter(device_id="OTHER").exists()
    # "The homeserver SHOULD NOT revoke the access token provided in the request."
    assert whoami(api, alice.access_token).status == 200


def test_logout_devices_true_logs_out_other_devices(api: MatrixTestClient, alice: Persona) -> None:
    other = api.login("alice", alice.password, device_id="OTHER").body

    with_password_uia(
        api, "POST", "account/password", alice, {"new_password": "pw2", "logout_devices": True}
    )

    assert whoami(api, other["access_token"]).errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, alice.access_token).status == 200


def test_logout_devices_false_keeps_other_devices(api: MatrixTestClient, alice: Persona) -> None:
    other = api.login("alice", alice.password, device_id="OTHER").body

    response = with_password_uia(
        api,
        "POST",
        "account/password",
        alice,
        {"new_password": "new pw", "logout_devices": False},
    )

    assert response.status == 200
    assert whoami(api, other["access_token"]).status == 200
    assert api.login("alice", "new pw").status == 200


def test_new_password_is_required_and_must_be_a_string(
    api: MatrixTestClient, alice: Persona
) -> None:
    missing = api.post("account/password", {}, token=alice.access_token)
    wrong = api.post("account/password", {"new_password": 1}, token=alice.access_token)

    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    assert (wrong.status, wrong.errcode) == (400, "M_BAD_JSON")


def test_an_empty_new_password_is_weak(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("account/password", {"new_password": ""}, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_WEAK_PASSWORD"
    assert api.login("alice", alice.password).status == 200


def test_logout_devices_must_be_a_boolean(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "account/password",
        {"new_password": "x", "logout_devices": "yes"},
        token=alice.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"


def test_without_a_token_the_password_is_reset_by_email_only(
    api: MatrixTestClient, alice: Persona
) -> None:
    # password_management.yaml: security includes {}; the forgotten-password flow
    # (tests/accounts/test_threepids_flows.py) proves an email address instead.
    response = api.post("account/password", {"new_password": "x"})

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.email.identity"]}]
    assert "errcode" not in response.body
