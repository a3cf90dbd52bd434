"""Which of an m.room.third_party_invite's keys signed an identity server's ``signed``
object (protocol/third_party_invites.py): no database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.signing import SigningKey, generate_signing_key, sign_json
from protocol.third_party_invites import InviteKey, invite_keys, keys_that_signed
from protocol.unpadded_base64 import encode_base64, encode_base64_url_safe

LONG_TERM = generate_signing_key("0")
EPHEMERAL = generate_signing_key("0")
URL = "https://id.example.org/_matrix/identity/v2/pubkey/isvalid"


def public(key: SigningKey = LONG_TERM, encode: Callable[[bytes], str] = encode_base64) -> str:
    return encode(key.verify_key.encode())


def content() -> dict[str, Any]:
    return {
        "display_name": "Bob",
        "public_key": public(),
        "key_validity_url": URL,
        "public_keys": [
            {"public_key": public(), "key_validity_url": URL},
            # No URL: valid indefinitely; URL-safe base64 is accepted too.
            {"public_key": public(EPHEMERAL, encode_base64_url_safe)},
        ],
    }


def test_the_keys_of_an_invite_in_order() -> None:
    assert invite_keys(content()) == [
        InviteKey(public(), URL),
        InviteKey(public(), URL),
        InviteKey(public(EPHEMERAL, encode_base64_url_safe), None),
    ]


def test_the_keys_that_signed() -> None:
    signed = sign_json({"mxid": "@bob:hs", "token": "t"}, "id.example.org", EPHEMERAL)

    assert keys_that_signed(signed, content()) == [
        InviteKey(public(EPHEMERAL, encode_base64_url_safe), None)
    ]


def test_a_signature_by_no_key_of_the_invite_matches_nothing() -> None:
    signed = sign_json(
        {"mxid": "@bob:hs", "token": "t"}, "id.example.org", generate_signing_key("0")
    )

    assert keys_that_signed(signed, content()) == []


def test_a_changed_object_matches_nothing() -> None:
    signed = sign_json({"mxid": "@bob:hs", "token": "t"}, "id.example.org", LONG_TERM)

    assert keys_that_signed({**signed, "mxid": "@eve:hs"}, content()) == []


def test_malformed_keys_and_signatures_are_skipped() -> None:
    signed = sign_json({"mxid": "@bob:hs", "token": "t"}, "id.example.org", LONG_TERM)
    odd = {"public_key": "not base64!", "public_keys": ["x", {"public_key": 5}]}

    assert keys_that_signed(signed, odd) == []
    assert keys_that_signed({**signed, "signatures": "none"}, content()) == []
