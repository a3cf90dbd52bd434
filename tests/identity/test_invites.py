"""Stored invitations and keys: POST /store-invite, POST /sign-ed25519, GET /pubkey/*."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core import mail

from protocol.signing import decode_verify_key_bytes, verify_signed_json
from tests.conftest import MatrixTestClient, Persona
from tests.identity.helpers import IS, is_token


@pytest.fixture
def token(api: MatrixTestClient, bob: Persona) -> str:
    return is_token(api, bob)


def store_invite(api: MatrixTestClient, auth: str, sender: str, **extra: Any) -> Any:
    body = {
        "medium": "email",
        "address": "carol@example.org",
        "room_id": "!room:example.org",
        "sender": sender,
        **extra,
    }
    return api.post(f"{IS}/store-invite", body, token=auth)


def test_sign_ed25519_with_the_mailed_ephemeral_key(
    api: MatrixTestClient, bob: Persona, token: str
) -> None:
    stored = store_invite(api, token, bob.user_id)
    assert stored.status == 200, stored.body
    ephemeral_public = stored.body["public_keys"][1]["public_key"]
    match = re.search(
        r"Ephemeral key \(for clients that ask for it\): (\S+)", mail.outbox[-1].body
    )
    assert match
    private_key = match.group(1)

    signed = api.post(
        f"{IS}/sign-ed25519",
        {"mxid": "@carol:example.org", "token": stored.body["token"], "private_key": private_key},
        token=token,
    )

    assert signed.status == 200, signed.body
    assert signed.body["mxid"] == "@carol:example.org"
    assert signed.body["sender"] == bob.user_id
    assert signed.body["token"] == stored.body["token"]
    verify_signed_json(
        signed.body, settings.SERVER_NAME, decode_verify_key_bytes("ed25519:0", ephemeral_public)
    )


def test_sign_ed25519_errors(api: MatrixTestClient, bob: Persona, token: str) -> None:
    stored = store_invite(api, token, bob.user_id)
    key = "A" * 43
    unknown = api.post(
        f"{IS}/sign-ed25519",
        {"mxid": "@carol:example.org", "token": "nope", "private_key": key},
        token=token,
    )
    assert (unknown.status, unknown.errcode) == (404, "M_UNRECOGNIZED")
    bad_key = api.post(
        f"{IS}/sign-ed25519",
        {"mxid": "@carol:example.org", "token": stored.body["token"], "private_key": "short"},
        token=token,
    )
    assert (bad_key.status, bad_key.errcode) == (400, "M_INVALID_PARAM")
    anonymous = api.post(
        f"{IS}/sign-ed25519", {"mxid": "@c:x.org", "token": "t", "private_key": key}
    )
    assert (anonymous.status, anonymous.errcode) == (401, "M_UNAUTHORIZED")


def test_store_invite_mails_the_details(api: MatrixTestClient, bob: Persona, token: str) -> None:
    stored = store_invite(
        api,
        token,
        bob.user_id,
        room_name="Garden",
        sender_display_name="Bob",
        room_alias="#garden:example.org",
        room_type="m.space",
    )
    assert stored.status == 200
    message = mail.outbox[-1]
    assert message.to == ["carol@example.org"]
    assert "Bob invited you to Garden" in message.subject
    assert "the space" in message.body
    assert "#garden:example.org" in message.body
    assert stored.body["token"] in message.body
    assert re.fullmatch(r"[0-9a-zA-Z.=_-]{1,255}", stored.body["token"])


def key_validity_urls(stored: Any) -> list[str]:
    return [key["key_validity_url"] for key in stored.body["public_keys"]]


def test_key_validity_urls_are_https_where_homeservers_reached_us(
    api: MatrixTestClient, bob: Persona, token: str, settings: Any
) -> None:
    # Homeservers follow only https key validity URLs, and reach an identity server as
    # https://<id_server>: with the default http://<TRELLIS_BIND> public base URL, the
    # keys are vouched for at the host the request was addressed to (found by the
    # live test tests/live/test_identity_end_to_end.py: every onbind was refused).
    settings.PUBLIC_BASEURL = "http://127.0.0.1:8008/"
    assert key_validity_urls(store_invite(api, token, bob.user_id)) == [
        "https://testserver/_matrix/identity/v2/pubkey/isvalid",
        "https://testserver/_matrix/identity/v2/pubkey/ephemeral/isvalid",
    ]


def test_key_validity_urls_follow_an_https_public_base_url(
    api: MatrixTestClient, bob: Persona, token: str, settings: Any
) -> None:
    settings.PUBLIC_BASEURL = "https://matrix.example.org/"
    assert key_validity_urls(store_invite(api, token, bob.user_id)) == [
        "https://matrix.example.org/_matrix/identity/v2/pubkey/isvalid",
        "https://matrix.example.org/_matrix/identity/v2/pubkey/ephemeral/isvalid",
    ]


@pytest.mark.parametrize(
    ("change", "status", "errcode"),
    [
        ({"medium": "msisdn"}, 400, "M_UNRECOGNIZED"),
        ({"address": "not an email"}, 400, "M_INVALID_EMAIL"),
        ({"room_id": "room"}, 400, "M_INVALID_PARAM"),
        ({"room_id": None}, 400, "M_MISSING_PARAMS"),
        ({"sender": "@someone:else.org"}, 403, "M_FORBIDDEN"),
    ],
)
def test_store_invite_errors(
    api: MatrixTestClient,
    bob: Persona,
    token: str,
    change: dict[str, Any],
    status: int,
    errcode: str,
) -> None:
    body = {
        "medium": "email",
        "address": "carol@example.org",
        "room_id": "!room:example.org",
        "sender": bob.user_id,
        **change,
    }
    response = api.post(
        f"{IS}/store-invite", {k: v for k, v in body.items() if v is not None}, token=token
    )
    assert (response.status, response.errcode) == (status, errcode)
    assert mail.outbox == []


def test_public_keys(api: MatrixTestClient) -> None:
    key = api.get(f"{IS}/pubkey/ed25519:0").body["public_key"]
    assert api.get(f"{IS}/pubkey/isvalid?public_key={quote(key)}").body == {"valid": True}
    assert api.get(f"{IS}/pubkey/isvalid?public_key=nonsense").body == {"valid": False}
    ephemeral = api.get(f"{IS}/pubkey/ephemeral/isvalid?public_key={quote(key)}")
    assert ephemeral.body == {"valid": False}
    unknown = api.get(f"{IS}/pubkey/ed25519:1")
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    missing = api.get(f"{IS}/pubkey/isvalid")
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAMS")


def test_the_long_term_key_is_kept_in_the_data_dir(settings: Any, tmp_path: Any) -> None:
    from identity.keys import identity_signing_key

    settings.IDENTITY_SIGNING_KEY_PATH = tmp_path / "identity.key"
    identity_signing_key.cache_clear()
    try:
        first = identity_signing_key()
        assert first.key_id == "ed25519:0"
        assert (tmp_path / "identity.key").exists()
        identity_signing_key.cache_clear()
        assert identity_signing_key().seed == first.seed
    finally:
        identity_signing_key.cache_clear()
