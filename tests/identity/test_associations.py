"""Binding, unbinding and looking up associations: POST /3pid/bind, /3pid/unbind,
GET /hash_details, POST /lookup."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings

from federation.client import authorization_header
from identity.models import Association
from protocol.threepids import lookup_hash
from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import CAROL, FakeNetwork, FakeServer
from tests.identity.helpers import IS, bind_email, is_token, request_email_token, validate_email


@pytest.fixture
def token(api: MatrixTestClient, alice: Persona) -> str:
    return is_token(api, alice)


def lookup(api: MatrixTestClient, auth: str, address: str, medium: str = "email") -> Any:
    pepper = api.get(f"{IS}/hash_details", token=auth).body["lookup_pepper"]
    response = api.post(
        f"{IS}/lookup",
        {
            "algorithm": "sha256",
            "pepper": pepper,
            "addresses": [lookup_hash(address, medium, pepper)],
        },
        token=auth,
    )
    assert response.status == 200, response.body
    return list(response.body["mappings"].values())


def bind(api: MatrixTestClient, auth: str, sid: str, mxid: str, secret: str = "s3cret") -> Any:
    return api.post(
        f"{IS}/3pid/bind", {"sid": sid, "client_secret": secret, "mxid": mxid}, token=auth
    )


def test_binding_needs_a_validated_session(
    api: MatrixTestClient, alice: Persona, token: str
) -> None:
    sid = request_email_token(api, token, "alice@example.org").body["sid"]

    response = bind(api, token, sid, alice.user_id)

    assert (response.status, response.errcode) == (400, "M_SESSION_NOT_VALIDATED")
    assert (bind(api, token, "nope", alice.user_id).status) == 404
    assert bind(api, token, "nope", alice.user_id).errcode == "M_NO_VALID_SESSION"


def test_binding_needs_a_token(api: MatrixTestClient, alice: Persona, token: str) -> None:
    sid = validate_email(api, token, "alice@example.org")
    response = bind(api, "", sid, alice.user_id)
    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")


def test_a_user_binds_only_their_own_user_id(
    api: MatrixTestClient, alice: Persona, bob: Persona, token: str
) -> None:
    sid = validate_email(api, token, "alice@example.org")
    response = bind(api, token, sid, bob.user_id)
    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    invalid = bind(api, token, sid, "not-a-user")
    assert (invalid.status, invalid.errcode) == (400, "M_INVALID_PARAM")


def test_lookup_errors(api: MatrixTestClient, token: str) -> None:
    pepper = api.get(f"{IS}/hash_details", token=token).body["lookup_pepper"]
    wrong_pepper = api.post(
        f"{IS}/lookup", {"algorithm": "sha256", "pepper": "old", "addresses": []}, token=token
    )
    assert (wrong_pepper.status, wrong_pepper.errcode) == (400, "M_INVALID_PEPPER")
    unknown = api.post(
        f"{IS}/lookup", {"algorithm": "md5", "pepper": pepper, "addresses": []}, token=token
    )
    assert (unknown.status, unknown.errcode) == (400, "M_INVALID_PARAM")
    missing = api.post(f"{IS}/lookup", {"algorithm": "sha256", "pepper": pepper}, token=token)
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAMS")
    not_strings = api.post(
        f"{IS}/lookup", {"algorithm": "sha256", "pepper": pepper, "addresses": [1]}, token=token
    )
    assert (not_strings.status, not_strings.errcode) == (400, "M_INVALID_PARAM")
    anonymous = api.get(f"{IS}/hash_details")
    assert (anonymous.status, anonymous.errcode) == (401, "M_UNAUTHORIZED")


def test_the_pepper_stays(api: MatrixTestClient, token: str) -> None:
    first = api.get(f"{IS}/hash_details", token=token).body
    assert first["algorithms"] == ["none", "sha256"]
    assert api.get(f"{IS}/hash_details", token=token).body == first


def test_binding_again_moves_the_address(
    api: MatrixTestClient, alice: Persona, bob: Persona, token: str
) -> None:
    bind_email(api, token, alice, "shared@example.org")
    bob_token = is_token(api, bob)
    assert lookup(api, bob_token, "shared@example.org") == [alice.user_id]

    bind_email(api, bob_token, bob, "shared@example.org", client_secret="bobs")

    assert lookup(api, token, "shared@example.org") == [bob.user_id]
    assert Association.objects.count() == 1


def test_unbind_with_the_session(api: MatrixTestClient, alice: Persona, token: str) -> None:
    sid = validate_email(api, token, "alice@example.org")
    assert bind(api, token, sid, alice.user_id).status == 200

    response = api.post(
        f"{IS}/3pid/unbind",
        {
            "sid": sid,
            "client_secret": "s3cret",
            "mxid": alice.user_id,
            "threepid": {"medium": "email", "address": "Alice@Example.org"},
        },
        token=token,
    )

    assert (response.status, response.body) == (200, {})
    assert lookup(api, token, "alice@example.org") == []


def test_unbind_with_a_session_of_another_address(
    api: MatrixTestClient, alice: Persona, token: str
) -> None:
    bind_email(api, token, alice, "alice@example.org")
    other = validate_email(api, token, "other@example.org", client_secret="other")

    response = api.post(
        f"{IS}/3pid/unbind",
        {
            "sid": other,
            "client_secret": "other",
            "mxid": alice.user_id,
            "threepid": {"medium": "email", "address": "alice@example.org"},
        },
        token=token,
    )

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert lookup(api, token, "alice@example.org") == [alice.user_id]


def test_unbind_without_any_proof(api: MatrixTestClient, alice: Persona, token: str) -> None:
    body = {"mxid": alice.user_id, "threepid": {"medium": "email", "address": "a@example.org"}}
    anonymous = api.post(f"{IS}/3pid/unbind", body)
    assert (anonymous.status, anonymous.errcode) == (401, "M_UNAUTHORIZED")
    no_session = api.post(f"{IS}/3pid/unbind", body, token=token)
    assert (no_session.status, no_session.errcode) == (403, "M_FORBIDDEN")
    no_threepid = api.post(f"{IS}/3pid/unbind", {"mxid": alice.user_id}, token=token)
    assert (no_threepid.status, no_threepid.errcode) == (400, "M_MISSING_PARAMS")


def signed_unbind(api: MatrixTestClient, server: FakeServer, body: dict[str, Any]) -> Response:
    path = f"{IS}/3pid/unbind"
    response = api.client.generic(
        "POST",
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": server.authorization("POST", path, content=body)},
        RAW_URI=path,
    )
    return Response(response.status_code, json.loads(response.content), dict(response.headers))


def test_a_homeserver_unbinds_its_user(
    api: MatrixTestClient, network: FakeNetwork, token: str
) -> None:
    carol = network.add(CAROL)
    now = 1
    Association.objects.create(
        medium="email",
        address="carol@example.org",
        mxid=f"@carol:{CAROL}",
        lookup_hash="x",
        ts=now,
        not_before=now,
        not_after=now + 10,
    )
    body = {
        "mxid": f"@carol:{CAROL}",
        "threepid": {"medium": "email", "address": "carol@example.org"},
    }

    response = signed_unbind(api, carol, body)

    assert (response.status, response.body) == (200, {})
    assert not Association.objects.exists()


def test_a_homeserver_does_not_unbind_another_servers_user(
    api: MatrixTestClient, network: FakeNetwork, alice: Persona, token: str
) -> None:
    bind_email(api, token, alice, "alice@example.org")
    carol = network.add(CAROL)
    body = {"mxid": alice.user_id, "threepid": {"medium": "email", "address": "alice@example.org"}}

    response = signed_unbind(api, carol, body)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert lookup(api, token, "alice@example.org") == [alice.user_id]


def test_a_bad_signature_is_unauthorized(
    api: MatrixTestClient, network: FakeNetwork, alice: Persona
) -> None:
    carol = network.add(CAROL)
    body = {"mxid": f"@carol:{CAROL}", "threepid": {"medium": "email", "address": "c@x.org"}}
    path = f"{IS}/3pid/unbind"
    header = carol.authorization("POST", path, content={**body, "mxid": "@other:x.org"})
    response = api.client.generic(
        "POST",
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": header},
        RAW_URI=path,
    )
    assert response.status_code == 401
    assert json.loads(response.content)["errcode"] == "M_UNAUTHORIZED"


def test_our_own_homeserver_unbinds_its_user(
    api: MatrixTestClient, alice: Persona, token: str
) -> None:
    bind_email(api, token, alice, "alice@example.org")
    body = {"mxid": alice.user_id, "threepid": {"medium": "email", "address": "alice@example.org"}}
    path = f"{IS}/3pid/unbind"
    # Signed as the homeserver's client code signs its requests to an identity server.
    header = authorization_header(settings.SERVER_NAME, "POST", path, body)

    response = api.client.generic(
        "POST",
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": header},
        RAW_URI=path,
    )

    assert response.status_code == 200, response.content
    assert lookup(api, token, "alice@example.org") == []
