"""Versions, status, accounts (OpenID registration, tokens, logout), terms, and the
service switched off."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from identity.models import IdentityToken
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, FakeNetwork, json_response
from tests.identity.helpers import IS, is_token, openid_token

TERMS = {
    "privacy_policy": {
        "version": "1.2",
        "en": {"name": "Privacy Policy", "url": "https://example.org/privacy-1.2-en.html"},
        "fr": {"name": "Politique", "url": "https://example.org/privacy-1.2-fr.html"},
    }
}


def test_versions_and_status(api: MatrixTestClient) -> None:
    versions = api.get("/_matrix/identity/versions")
    assert versions.status == 200
    assert "v1.1" in versions.body["versions"]
    status = api.get("/_matrix/identity/v2")
    assert (status.status, status.body) == (200, {})


def test_register_gives_a_token_stored_only_as_a_digest(
    api: MatrixTestClient, alice: Persona
) -> None:
    token = is_token(api, alice)

    assert api.get(f"{IS}/account", token=token).body == {"user_id": alice.user_id}
    # The deprecated query parameter works too.
    by_query = api.get(f"{IS}/account?access_token={quote(token)}")
    assert by_query.body == {"user_id": alice.user_id}
    stored = IdentityToken.objects.get()
    assert token not in stored.token_hash


def test_register_refuses_an_unknown_openid_token(api: MatrixTestClient) -> None:
    response = api.post(
        f"{IS}/account/register",
        {
            "access_token": "nonsense",
            "token_type": "Bearer",
            "matrix_server_name": settings.SERVER_NAME,
            "expires_in": 3600,
        },
    )
    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")


def test_register_needs_its_parameters(api: MatrixTestClient, alice: Persona) -> None:
    full = openid_token(api, alice)
    for name in ("access_token", "token_type", "matrix_server_name", "expires_in"):
        partial = {k: v for k, v in full.items() if k != name}
        response = api.post(f"{IS}/account/register", partial)
        assert (response.status, response.errcode) == (400, "M_MISSING_PARAMS"), name
    bad_server = api.post(f"{IS}/account/register", {**full, "matrix_server_name": "a b"})
    assert (bad_server.status, bad_server.errcode) == (400, "M_INVALID_PARAM")


def test_a_client_access_token_is_not_an_identity_token(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = api.get(f"{IS}/account", token=alice.access_token)
    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")


def test_register_asks_another_homeserver_over_federation(
    api: MatrixTestClient, network: FakeNetwork
) -> None:
    carol = network.add(CAROL)
    carol.routes["/_matrix/federation/v1/openid/userinfo?access_token=tok%2Fen"] = json_response(
        {"sub": f"@carol:{CAROL}"}
    )
    body = {
        "access_token": "tok/en",
        "token_type": "Bearer",
        "matrix_server_name": CAROL,
        "expires_in": 3600,
    }

    response = api.post(f"{IS}/account/register", body)

    assert response.status == 200, response.body
    assert api.get(f"{IS}/account", token=response.body["token"]).body == {
        "user_id": f"@carol:{CAROL}"
    }
    [asked] = [r for r in network.sent if "openid" in r.path]
    # The userinfo endpoint takes no X-Matrix signature.
    assert "Authorization" not in asked.headers


@pytest.mark.parametrize(
    "answer",
    [
        json_response({"sub": "@mallory:elsewhere.example"}),
        json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "no"}, 401),
        json_response({"no": "sub"}),
    ],
)
def test_register_refuses_what_the_homeserver_does_not_vouch_for(
    api: MatrixTestClient, network: FakeNetwork, answer: Any
) -> None:
    carol = network.add(CAROL)
    carol.routes["/_matrix/federation/v1/openid/userinfo?access_token=t"] = answer
    body = {
        "access_token": "t",
        "token_type": "Bearer",
        "matrix_server_name": CAROL,
        "expires_in": 3600,
    }

    response = api.post(f"{IS}/account/register", body)

    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")


def test_register_with_an_unreachable_homeserver(
    api: MatrixTestClient, network: FakeNetwork
) -> None:
    body = {
        "access_token": "t",
        "token_type": "Bearer",
        "matrix_server_name": "gone.example:8448",
        "expires_in": 3600,
    }
    response = api.post(f"{IS}/account/register", body)
    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")


def test_missing_and_unknown_tokens_are_unauthorized(api: MatrixTestClient) -> None:
    missing = api.get(f"{IS}/account")
    assert (missing.status, missing.errcode) == (401, "M_UNAUTHORIZED")
    unknown = api.get(f"{IS}/account", token="nonsense")
    assert (unknown.status, unknown.errcode) == (401, "M_UNAUTHORIZED")


def test_logout_ends_the_token(api: MatrixTestClient, alice: Persona) -> None:
    token = is_token(api, alice)

    # The spec's one POST without a body.
    logout = api.request("POST", f"{IS}/account/logout", token=token)
    assert (logout.status, logout.body) == (200, {})

    after = api.get(f"{IS}/account", token=token)
    assert (after.status, after.errcode) == (401, "M_UNAUTHORIZED")
    again = api.post(f"{IS}/account/logout", token=token)
    assert (again.status, again.errcode) == (401, "M_UNKNOWN_TOKEN")


def test_an_openid_token_registers_once_per_call(api: MatrixTestClient, alice: Persona) -> None:
    first = openid_token(api, alice)
    assert api.post(f"{IS}/account/register", first).status == 200
    assert api.post(f"{IS}/account/register", first).status == 200
    assert IdentityToken.objects.filter(user_id=alice.user_id).count() == 2


def test_no_terms_by_default(api: MatrixTestClient, alice: Persona) -> None:
    assert api.get(f"{IS}/terms").body == {"policies": {}}
    assert api.get(f"{IS}/account", token=is_token(api, alice)).status == 200


def test_terms_must_be_accepted_before_use(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.IDENTITY_TERMS = TERMS
    token = is_token(api, alice)
    assert api.get(f"{IS}/terms").body == {"policies": TERMS}

    refused = api.get(f"{IS}/account", token=token)
    assert (refused.status, refused.errcode) == (403, "M_TERMS_NOT_SIGNED")
    # Another URL accepts nothing.
    accepted = api.post(
        f"{IS}/terms", {"user_accepts": ["https://example.org/other.html"]}, token=token
    )
    assert accepted.status == 200
    assert api.get(f"{IS}/account", token=token).errcode == "M_TERMS_NOT_SIGNED"

    # One language's URL accepts the policy.
    accepted = api.post(
        f"{IS}/terms",
        {"user_accepts": ["https://example.org/privacy-1.2-fr.html"]},
        token=token,
    )
    assert (accepted.status, accepted.body) == (200, {})
    assert api.get(f"{IS}/account", token=token).status == 200


def test_accepting_terms_needs_a_token_and_a_list(api: MatrixTestClient, alice: Persona) -> None:
    assert api.post(f"{IS}/terms", {"user_accepts": []}).errcode == "M_UNAUTHORIZED"
    token = is_token(api, alice)
    assert api.post(f"{IS}/terms", {}, token=token).errcode == "M_MISSING_PARAMS"
    wrong = api.post(f"{IS}/terms", {"user_accepts": [1]}, token=token)
    assert (wrong.status, wrong.errcode) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_matrix/identity/versions"),
        ("GET", "/_matrix/identity/v2"),
        ("GET", f"{IS}/terms"),
        ("POST", f"{IS}/lookup"),
        ("GET", f"{IS}/pubkey/ed25519:0"),
    ],
)
def test_switched_off_the_paths_are_unrecognized(
    api: MatrixTestClient, settings: Any, method: str, path: str
) -> None:
    settings.IDENTITY_SERVICE_ENABLED = False
    response = api.request(method, path, {} if method == "POST" else None)
    assert (response.status, response.errcode) == (404, "M_UNRECOGNIZED")


def test_a_wrong_method_is_405_unrecognized(api: MatrixTestClient) -> None:
    response = api.post(f"{IS}/hash_details", {})
    assert (response.status, response.errcode) == (405, "M_UNRECOGNIZED")


def test_terms_are_public_whatever_token_comes_along(api: MatrixTestClient) -> None:
    response = api.get(f"{IS}/terms", token="not-a-token")
    assert (response.status, response.body) == (200, {"policies": {}})
