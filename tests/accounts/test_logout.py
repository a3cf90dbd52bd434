"""POST /logout and POST /logout/all (Client-Server API, "Login")."""

from __future__ import annotations

from accounts.models import Device
from tests.accounts.helpers import whoami
from tests.conftest import MatrixTestClient, Persona


def test_logout_ends_the_session_and_deletes_its_device(
    api: MatrixTestClient, alice: Persona
) -> None:
    other = api.login("alice", alice.password).body

    response = api.post("logout", token=alice.access_token)

    assert response.status == 200
    assert response.body == {}
    gone = whoami(api, alice.access_token)
    assert gone.status == 401
    assert gone.errcode == "M_UNKNOWN_TOKEN"
    assert gone.body["soft_logout"] is False
    assert not Device.objects.filter(device_id=alice.device_id).exists()
    assert whoami(api, other["access_token"]).status == 200


def test_logout_takes_an_empty_body(api: MatrixTestClient, alice: Persona) -> None:
    response = api.request("POST", "logout", raw=b"", token=alice.access_token)

    assert response.status == 200
    assert whoami(api, alice.access_token).status == 401


def test_logout_twice_is_an_unknown_token(api: MatrixTestClient, alice: Persona) -> None:
    api.post("logout", token=alice.access_token)

    response = api.post("logout", token=alice.access_token)

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_logout_needs_a_token(api: MatrixTestClient) -> None:
    response = api.post("logout")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_logout_all_ends_every_session_of_the_user_only(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    other = api.login("alice", alice.password).body

    response = api.post("logout/all", token=other["access_token"])

    assert response.status == 200
    assert response.body == {}
    assert whoami(api, alice.access_token).errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, other["access_token"]).errcode == "M_UNKNOWN_TOKEN"
    assert not Device.objects.filter(user__localpart="alice").exists()
    assert whoami(api, bob.access_token).status == 200


def test_a_user_can_log_in_again_after_logout_all(api: MatrixTestClient, alice: Persona) -> None:
    api.post("logout/all", token=alice.access_token)

    again = api.login("alice", alice.password)

    assert again.status == 200
    assert whoami(api, again.body["access_token"]).status == 200
