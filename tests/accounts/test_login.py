"""GET/POST /login and POST /refresh (Client-Server API, "Login", "Refreshing access tokens")."""

from __future__ import annotations

from typing import Any

from accounts.models import AccessToken, User
from tests.accounts.helpers import password_auth, whoami
from tests.conftest import MatrixTestClient, Persona


def test_the_password_and_token_flows_are_advertised(api: MatrixTestClient) -> None:
    response = api.get("login")

    assert response.status == 200
    assert response.body == {
        "flows": [
            {"type": "m.login.password"},
            {"type": "m.login.token", "get_login_token": True},
        ]
    }


def test_login_with_a_localpart(api: MatrixTestClient, alice: Persona) -> None:
    response = api.login("alice", alice.password)

    assert response.status == 200
    assert response.body["user_id"] == alice.user_id
    assert response.body["device_id"] != alice.device_id
    assert response.body["home_server"] == alice.user_id.split(":", 1)[1]
    assert response.body["well_known"]["m.homeserver"]["base_url"].startswith("http")
    assert "refresh_token" not in response.body
    assert "expires_in_ms" not in response.body
    me = whoami(api, response.body["access_token"])
    assert me.body["device_id"] == response.body["device_id"]
    # A new device: alice's first session is untouched.
    assert whoami(api, alice.access_token).status == 200


def test_login_with_a_full_user_id(api: MatrixTestClient, alice: Persona) -> None:
    response = api.login(alice.user_id, alice.password)

    assert response.status == 200
    assert response.body["user_id"] == alice.user_id


def test_login_is_case_insensitive_in_the_user_name(api: MatrixTestClient, alice: Persona) -> None:
    response = api.login("ALICE", alice.password)

    assert response.status == 200
    assert response.body["user_id"] == alice.user_id


def test_login_with_the_legacy_user_field(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "login", {"type": "m.login.password", "user": "alice", "password": alice.password}
    )

    assert response.status == 200
    assert response.body["user_id"] == alice.user_id


def test_a_wrong_password_is_forbidden(api: MatrixTestClient, alice: Persona) -> None:
    response = api.login("alice", "not the password")

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert User.objects.get(localpart="alice").devices.count() == 1


def test_an_unknown_user_is_forbidden(api: MatrixTestClient) -> None:
    response = api.login("nobody", "whatever")

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_a_user_on_another_server_is_forbidden(api: MatrixTestClient, alice: Persona) -> None:
    response = api.login("@alice:elsewhere.example", alice.password)

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_a_third_party_identifier_matches_no_account(api: MatrixTestClient) -> None:
    response = api.post(
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@b.c"},
            "password": "pw",
        },
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_an_unknown_login_type_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("login", {"type": "m.login.sso", "token": "abc"})

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"


def test_an_unknown_identifier_type_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "login",
        {"type": "m.login.password", "identifier": {"type": "m.id.x"}, "password": "pw"},
    )

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"


def test_login_needs_a_type_and_a_password(api: MatrixTestClient, alice: Persona) -> None:
    no_type = api.post("login", {"user": "alice", "password": alice.password})
    no_password = api.post("login", {"type": "m.login.password", "user": "alice"})
    no_user = api.post("login", {"type": "m.login.password", "password": alice.password})

    for response in (no_type, no_password, no_user):
        assert response.status == 400
        assert response.errcode == "M_MISSING_PARAM"


def test_a_deactivated_user_cannot_log_in(api: MatrixTestClient, alice: Persona) -> None:
    first = api.post("account/deactivate", {}, token=alice.access_token)
    done = api.post(
        "account/deactivate",
        {"auth": password_auth(alice, first.body["session"])},
        token=alice.access_token,
    )
    assert done.status == 200

    response = api.login("alice", alice.password)

    assert response.status == 403
    assert response.errcode == "M_USER_DEACTIVATED"
    assert AccessToken.objects.filter(user__localpart="alice").count() == 0


# --- Devices at login ----------------------------------------------------------------


def test_login_with_a_new_device_id_creates_that_device(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = api.login(
        "alice", alice.password, device_id="LAPTOP", initial_device_display_name="Laptop"
    )

    assert response.status == 200
    assert response.body["device_id"] == "LAPTOP"
    device = api.get("devices/LAPTOP", token=alice.access_token)
    assert device.body["display_name"] == "Laptop"


def test_reusing_a_device_id_keeps_the_device_and_ends_its_old_token(
    api: MatrixTestClient, alice: Persona
) -> None:
    api.put(f"devices/{alice.device_id}", {"display_name": "Phone"}, token=alice.access_token)

    again = api.login(
        "alice", alice.password, device_id=alice.device_id, initial_device_display_name="Other"
    )

    assert again.status == 200
    assert again.body["device_id"] == alice.device_id
    old = whoami(api, alice.access_token)
    assert old.status == 401
    assert old.errcode == "M_UNKNOWN_TOKEN"
    new = whoami(api, again.body["access_token"])
    assert new.body["device_id"] == alice.device_id
    devices = api.get("devices", token=again.body["access_token"]).body["devices"]
    assert [(d["device_id"], d["display_name"]) for d in devices] == [(alice.device_id, "Phone")]


# --- Refresh tokens ------------------------------------------------------------------


def login_with_refresh(api: MatrixTestClient, persona: Persona) -> dict[str, Any]:
    response = api.login(persona.localpart, persona.password, refresh_token=True)
    assert response.status == 200, response.body
    return dict(response.body)


def test_refresh_token_login_gives_an_expiring_access_token(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.ACCESS_TOKEN_LIFETIME_MS = 300_000

    body = login_with_refresh(api, alice)

    assert body["refresh_token"]
    assert body["refresh_token"] != body["access_token"]
    assert body["expires_in_ms"] == 300_000
    assert whoami(api, body["access_token"]).status == 200


def test_refresh_gives_a_new_pair_for_the_same_device(
    api: MatrixTestClient, alice: Persona
) -> None:
    first = login_with_refresh(api, alice)

    refreshed = api.post("refresh", {"refresh_token": first["refresh_token"]})

    assert refreshed.status == 200
    assert refreshed.body["access_token"] != first["access_token"]
    assert refreshed.body["refresh_token"] != first["refresh_token"]
    assert refreshed.body["expires_in_ms"] > 0
    me = whoami(api, refreshed.body["access_token"])
    assert me.body["device_id"] == first["device_id"]
    # This server ends the old access token at once (the spec lets it choose).
    assert whoami(api, first["access_token"]).errcode == "M_UNKNOWN_TOKEN"


def test_the_old_refresh_token_works_until_the_new_access_token_is_used(
    api: MatrixTestClient, alice: Persona
) -> None:
    # Refresh, "The old refresh token remains valid until the new access token or
    # refresh token is used": a client that lost the answer can repeat the refresh.
    first = login_with_refresh(api, alice)
    lost = api.post("refresh", {"refresh_token": first["refresh_token"]})
    assert lost.status == 200

    repeated = api.post("refresh", {"refresh_token": first["refresh_token"]})

    assert repeated.status == 200
    assert whoami(api, repeated.body["access_token"]).status == 200
    # The pair whose answer was lost is replaced by the repeated one.
    assert whoami(api, lost.body["access_token"]).errcode == "M_UNKNOWN_TOKEN"
    assert api.post("refresh", {"refresh_token": lost.body["refresh_token"]}).status == 401
    # The new access token has been used: the old refresh token is now revoked.
    stale = api.post("refresh", {"refresh_token": first["refresh_token"]})
    assert stale.status == 401
    assert stale.errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, repeated.body["access_token"]).status == 200


def test_the_old_refresh_token_dies_when_the_new_refresh_token_is_used(
    api: MatrixTestClient, alice: Persona
) -> None:
    first = login_with_refresh(api, alice)
    second = api.post("refresh", {"refresh_token": first["refresh_token"]}).body
    third = api.post("refresh", {"refresh_token": second["refresh_token"]})
    assert third.status == 200

    stale = api.post("refresh", {"refresh_token": first["refresh_token"]})

    assert stale.status == 401
    assert stale.errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, third.body["access_token"]).status == 200


def test_an_unknown_refresh_token_is_refused(api: MatrixTestClient) -> None:
    response = api.post("refresh", {"refresh_token": "mar_nonsense"})

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"
    assert response.body["soft_logout"] is False


def test_an_access_token_is_not_a_refresh_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("refresh", {"refresh_token": alice.access_token})

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, alice.access_token).status == 200


def test_refresh_needs_a_refresh_token(api: MatrixTestClient) -> None:
    response = api.post("refresh", {})

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


def test_an_expired_access_token_is_a_soft_logout_and_can_be_refreshed(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.ACCESS_TOKEN_LIFETIME_MS = -1
    body = login_with_refresh(api, alice)

    expired = whoami(api, body["access_token"])

    assert expired.status == 401
    assert expired.errcode == "M_UNKNOWN_TOKEN"
    assert expired.body["soft_logout"] is True
    settings.ACCESS_TOKEN_LIFETIME_MS = 60_000
    refreshed = api.post("refresh", {"refresh_token": body["refresh_token"]})
    assert refreshed.status == 200
    assert whoami(api, refreshed.body["access_token"]).status == 200


def test_an_access_token_without_refresh_never_expires(
    api: MatrixTestClient, alice: Persona
) -> None:
    assert AccessToken.objects.get(user__localpart="alice").expires_at_ms is None


def test_refresh_after_logout_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    body = login_with_refresh(api, alice)
    assert api.post("logout", token=body["access_token"]).status == 200

    response = api.post("refresh", {"refresh_token": body["refresh_token"]})

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"
