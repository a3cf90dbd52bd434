"""GET /_matrix/key/v2/server: this server's keys, self-signed."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from accounts.clock import now_ms
from federation.keys import server_signing_key
from protocol.server_keys import parse_server_keys
from tests.conftest import MatrixTestClient

KEYS = "/_matrix/key/v2/server"
WEEK_MS = 7 * 24 * 3600 * 1000


def test_the_server_publishes_its_key_self_signed(api: MatrixTestClient) -> None:
    before = now_ms()

    response = api.get(KEYS)

    assert response.status == 200
    body = response.body
    assert body["server_name"] == settings.SERVER_NAME
    assert body["old_verify_keys"] == {}
    assert before + WEEK_MS <= body["valid_until_ts"] <= now_ms() + WEEK_MS
    key = server_signing_key()
    keys = parse_server_keys(body, settings.SERVER_NAME, now_ms())
    assert list(keys.verify_keys) == [key.key_id]
    assert keys.verify_keys[key.key_id].encode() == key.verify_key.encode()


def test_it_needs_no_authentication_and_ignores_tokens(api: MatrixTestClient) -> None:
    assert api.get(KEYS, token="not-a-token").status == 200


def test_other_methods_are_unrecognized(api: MatrixTestClient) -> None:
    response = api.post(KEYS, {})
    assert (response.status, response.errcode) == (405, "M_UNRECOGNIZED")


def test_the_deprecated_form_naming_a_key_answers_with_every_key(api: MatrixTestClient) -> None:
    key = server_signing_key()

    for key_id in (key.key_id, "ed25519:unknown"):
        response = api.get(f"{KEYS}/{quote(key_id)}")

        assert response.status == 200, response.body
        assert list(response.body["verify_keys"]) == [key.key_id]
