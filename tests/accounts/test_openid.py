"""OpenID: POST /user/{userId}/openid/request_token, and the federation endpoint a third
party exchanges the token at, GET /_matrix/federation/v1/openid/userinfo."""

from __future__ import annotations

from typing import Any

from accounts.models import OpenIdToken
from tests.accounts.helpers import database_dump, with_password_uia
from tests.conftest import MatrixTestClient, Persona

USERINFO = "/_matrix/federation/v1/openid/userinfo"


def request_token(api: MatrixTestClient, who: Persona, user_id: str | None = None) -> Any:
    return api.post(
        f"user/{user_id or who.user_id}/openid/request_token", {}, token=who.access_token
    )


def test_a_token_names_its_owner_at_userinfo(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    response = request_token(api, alice)

    assert response.status == 200
    assert response.body["token_type"] == "Bearer"
    assert response.body["matrix_server_name"] == settings.SERVER_NAME
    assert response.body["expires_in"] == 3600
    info = api.get(f"{USERINFO}?access_token={response.body['access_token']}")
    assert info.status == 200
    assert info.body == {"sub": alice.user_id}


def test_userinfo_needs_no_authorization_header(api: MatrixTestClient, alice: Persona) -> None:
    token = request_token(api, alice).body["access_token"]

    # A third party (an integration manager) calls it with the token alone.
    assert api.client.get(f"{USERINFO}?access_token={token}").status_code == 200


def test_an_unknown_token_is_401_unknown_token(api: MatrixTestClient) -> None:
    response = api.get(f"{USERINFO}?access_token=nonsense")

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_an_expired_token_is_401_unknown_token(api: MatrixTestClient, alice: Persona) -> None:
    token = request_token(api, alice).body["access_token"]
    OpenIdToken.objects.update(expires_at_ms=1)

    response = api.get(f"{USERINFO}?access_token={token}")

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_a_missing_token_is_401_missing_token(api: MatrixTestClient) -> None:
    """The spec's only error for userinfo is 401 (sytest 45openid expects it too)."""
    response = api.get(USERINFO)

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_an_access_token_is_not_an_openid_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(f"{USERINFO}?access_token={alice.access_token}")

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_an_openid_token_is_not_an_access_token(api: MatrixTestClient, alice: Persona) -> None:
    token = request_token(api, alice).body["access_token"]

    response = api.get("account/whoami", token=token)

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_a_token_for_someone_else_is_403_and_issues_nothing(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = request_token(api, alice, bob.user_id)

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert not OpenIdToken.objects.exists()


def test_requesting_a_token_needs_an_access_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(f"user/{alice.user_id}/openid/request_token", {})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_a_body_that_is_not_an_object_is_400_bad_json(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = api.request(
        "POST", f"user/{alice.user_id}/openid/request_token", raw=b"[]", token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert not OpenIdToken.objects.exists()


def test_each_request_gives_a_new_token_and_drops_expired_ones(
    api: MatrixTestClient, alice: Persona
) -> None:
    first = request_token(api, alice).body["access_token"]
    OpenIdToken.objects.update(expires_at_ms=1)

    second = request_token(api, alice).body["access_token"]

    assert first != second
    assert OpenIdToken.objects.count() == 1
    assert api.get(f"{USERINFO}?access_token={second}").body == {"sub": alice.user_id}


def test_tokens_are_stored_only_as_digests(api: MatrixTestClient, alice: Persona) -> None:
    token = request_token(api, alice).body["access_token"]

    dump = database_dump()

    assert token not in dump
    assert token[4:] not in dump


def test_deactivation_revokes_openid_tokens(api: MatrixTestClient, alice: Persona) -> None:
    token = request_token(api, alice).body["access_token"]

    done = with_password_uia(api, "POST", "account/deactivate", alice)

    assert done.status == 200
    response = api.get(f"{USERINFO}?access_token={token}")
    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"
