"""Account deactivation: POST /account/deactivate and the operator's admin.

Client-Server API, "Account deactivation": the account can never log in again and
every device and session is removed; ``erase`` also forgets the profile.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import AccessToken, AccountData, Device, User
from tests.accounts.helpers import change_form_data, password_auth, whoami, with_password_uia
from tests.conftest import MatrixTestClient, Persona


def deactivate(api: MatrixTestClient, persona: Persona, **body: Any) -> Any:
    return with_password_uia(api, "POST", "account/deactivate", persona, body)


def test_deactivation_asks_for_the_password(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("account/deactivate", {}, token=alice.access_token)

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.password"]}]
    assert User.objects.get(localpart="alice").is_active


def test_deactivation_takes_an_empty_body(api: MatrixTestClient, alice: Persona) -> None:
    response = api.request("POST", "account/deactivate", raw=b"", token=alice.access_token)

    assert response.status == 401
    assert "session" in response.body


def test_a_wrong_password_leaves_the_account_active(api: MatrixTestClient, alice: Persona) -> None:
    first = api.post("account/deactivate", {}, token=alice.access_token)

    response = api.post(
        "account/deactivate",
        {"auth": password_auth(alice, first.body["session"], "wrong")},
        token=alice.access_token,
    )

    assert response.status == 401
    assert response.errcode == "M_FORBIDDEN"
    assert User.objects.get(localpart="alice").is_active
    assert whoami(api, alice.access_token).status == 200


def test_deactivation_ends_every_session(api: MatrixTestClient, alice: Persona) -> None:
    other = api.login("alice", alice.password).body

    response = deactivate(api, alice)

    assert response.status == 200
    # Nothing was bound at an identity server, so nothing failed to unbind (as Synapse).
    assert response.body == {"id_server_unbind_result": "success"}
    for token in (alice.access_token, other["access_token"]):
        gone = whoami(api, token)
        assert gone.status == 401
        assert gone.errcode == "M_UNKNOWN_TOKEN"
    user = User.objects.get(localpart="alice")
    assert not user.is_active
    assert user.deactivated_at is not None
    assert not user.has_usable_password()
    assert not Device.objects.filter(user=user).exists()


def test_a_deactivated_user_cannot_log_in_again(api: MatrixTestClient, alice: Persona) -> None:
    deactivate(api, alice)

    response = api.login("alice", alice.password)

    assert response.status == 403
    assert response.errcode == "M_USER_DEACTIVATED"


def test_a_deactivated_user_id_is_never_reused(api: MatrixTestClient, alice: Persona) -> None:
    deactivate(api, alice)

    response = api.post("register", {"username": "alice", "password": "pw"})

    assert response.status == 400
    assert response.errcode == "M_USER_IN_USE"


def test_without_erase_the_profile_stays(api: MatrixTestClient, alice: Persona) -> None:
    api.put(
        f"profile/{alice.user_id}/displayname", {"displayname": "Al"}, token=alice.access_token
    )

    deactivate(api, alice)

    assert api.get(f"profile/{alice.user_id}/displayname").body == {"displayname": "Al"}


def test_erase_forgets_the_profile_and_account_data(api: MatrixTestClient, alice: Persona) -> None:
    api.put(
        f"profile/{alice.user_id}/avatar_url",
        {"avatar_url": "mxc://example.org/abc"},
        token=alice.access_token,
    )
    api.put(f"user/{alice.user_id}/account_data/org.example.x", {"a": 1}, token=alice.access_token)

    response = deactivate(api, alice, erase=True)

    assert response.status == 200
    profile = api.get(f"profile/{alice.user_id}")
    assert "displayname" not in (profile.body or {})
    assert "avatar_url" not in (profile.body or {})
    assert api.get(f"profile/{alice.user_id}/displayname").status == 404
    assert User.objects.get(localpart="alice").profile == {}
    assert not AccountData.objects.filter(user__localpart="alice").exists()


def test_erase_must_be_a_boolean(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("account/deactivate", {"erase": "yes"}, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert User.objects.get(localpart="alice").is_active


def test_deactivation_needs_a_token(api: MatrixTestClient) -> None:
    response = api.post("account/deactivate", {})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


# --- The Django admin ---------------------------------------------------------------


@pytest.fixture
def operator(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("operator", "operator pw"))
    return client


def test_the_admin_action_deactivates_and_logs_out(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client
) -> None:
    pk = User.objects.get(localpart="alice").pk

    response = operator.post(
        "/admin/accounts/user/",
        {"action": "deactivate", "_selected_action": [pk], "index": "0"},
    )

    assert response.status_code == 302
    assert not User.objects.get(pk=pk).is_active
    assert whoami(api, alice.access_token).errcode == "M_UNKNOWN_TOKEN"
    assert not Device.objects.filter(user_id=pk).exists()
    assert not AccessToken.objects.filter(user_id=pk).exists()
    assert api.login("alice", alice.password).errcode == "M_USER_DEACTIVATED"
    assert whoami(api, bob.access_token).status == 200


def test_the_admin_deactivate_action_deactivates_and_logs_out(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    user = User.objects.get(localpart="alice")
    url = f"/admin/accounts/user/{user.pk}/do/deactivate/"
    assert operator.get(url).status_code == 200

    response = operator.post(url, {"confirm": "on"})

    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert not user.is_active
    assert user.deactivated_at is not None
    assert not Device.objects.filter(user=user).exists()
    assert whoami(api, alice.access_token).errcode == "M_UNKNOWN_TOKEN"
    assert api.login("alice", alice.password).errcode == "M_USER_DEACTIVATED"


def test_the_admin_form_is_never_saved_so_the_user_stays_logged_in(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    user = User.objects.get(localpart="alice")
    url = f"/admin/accounts/user/{user.pk}/change/"
    data = change_form_data(operator.get(url))

    response = operator.post(url, {**data, "is_active": ""})

    assert response.status_code == 403
    assert User.objects.get(pk=user.pk).is_active
    assert whoami(api, alice.access_token).status == 200
