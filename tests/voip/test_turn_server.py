"""GET /voip/turnServer (Client-Server API, "Voice over IP"): TURN credentials made with
the secret shared with the TURN server, as coturn's use-auth-secret checks them."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest

from tests.conftest import MatrixTestClient, Persona
from voip.credentials import turn_password, turn_server_for

SECRET = "n0t-s0-s3cret"
URIS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]


@pytest.fixture
def turn(settings: Any) -> None:
    settings.TURN_URIS = URIS
    settings.TURN_SHARED_SECRET = SECRET
    settings.TURN_TTL_S = 3600


def rfc2104_hmac_sha1(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA1 written out from RFC 2104, without the hmac module."""
    block = 64
    key = key.ljust(block, b"\0")
    inner = hashlib.sha1(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha1(bytes(k ^ 0x5C for k in key) + inner).digest()


def test_the_password_is_base64_hmac_sha1_of_the_username() -> None:
    username = "1700000000:@alice:example.org"

    # The second value is what `openssl dgst -sha1 -hmac n0t-s0-s3cret -binary | base64`
    # prints for that username.
    expected = base64.b64encode(rfc2104_hmac_sha1(SECRET.encode(), username.encode())).decode()
    assert turn_password(SECRET, username) == expected == "KRbNPPyfDl2zJ99RocaUrRDXvfs="


@pytest.mark.usefixtures("turn")
def test_a_user_gets_credentials_for_the_configured_servers(
    api: MatrixTestClient, alice: Persona
) -> None:
    before = int(time.time())
    response = api.get("voip/turnServer", token=alice.access_token)
    after = int(time.time())

    assert response.status == 200, response.body
    assert set(response.body) == {"username", "password", "uris", "ttl"}
    assert response.body["uris"] == URIS
    assert response.body["ttl"] == 3600
    expiry, user = response.body["username"].split(":", 1)
    assert user == alice.user_id
    assert before + 3600 <= int(expiry) <= after + 3600
    digest = rfc2104_hmac_sha1(SECRET.encode(), response.body["username"].encode())
    assert response.body["password"] == base64.b64encode(digest).decode()


@pytest.mark.usefixtures("turn")
def test_the_r0_path_answers_the_same(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("/_matrix/client/r0/voip/turnServer", token=alice.access_token)

    assert response.status == 200, response.body
    assert response.body["username"].endswith(f":{alice.user_id}")


@pytest.mark.usefixtures("turn")
def test_each_user_gets_their_own_credentials(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    for_alice = api.get("voip/turnServer", token=alice.access_token).body
    for_bob = api.get("voip/turnServer", token=bob.access_token).body

    assert for_bob["username"].endswith(f":{bob.user_id}")
    assert for_alice["password"] != for_bob["password"]


@pytest.mark.usefixtures("turn")
def test_credentials_need_an_access_token(api: MatrixTestClient) -> None:
    response = api.get("voip/turnServer")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


@pytest.mark.usefixtures("turn")
def test_an_unknown_token_is_refused(api: MatrixTestClient) -> None:
    response = api.get("voip/turnServer", token="not-a-token")

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_without_a_turn_server_the_answer_is_empty(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("voip/turnServer", token=alice.access_token)

    assert response.status == 200
    assert response.body == {}


def test_the_expiry_is_the_time_of_asking_plus_the_ttl(settings: Any) -> None:
    settings.TURN_URIS = URIS
    settings.TURN_SHARED_SECRET = SECRET
    settings.TURN_TTL_S = 600

    server = turn_server_for("@carol:example.org", now_s=1_700_000_000.9)

    assert server is not None
    assert server["username"] == "1700000600:@carol:example.org"
    assert server["password"] == turn_password(SECRET, "1700000600:@carol:example.org")
