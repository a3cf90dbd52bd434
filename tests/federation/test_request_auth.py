"""Inbound X-Matrix authentication and the key fetching behind it.

Remote servers are faked at the wire (tests/federation/helpers.py); discovery, key
checking, storing and signature verification run for real.
"""

from __future__ import annotations

import copy
import json
from io import BytesIO
from typing import Any
from urllib.parse import unquote

import pytest
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.test import RequestFactory

from accounts.clock import now_ms
from federation import key_cache, keyring
from federation.auth import authenticate_request
from federation.keys import server_signing_key
from federation.models import RemoteServerKey
from federation.services import do_store_server_keys
from protocol.errors import MatrixError
from protocol.server_keys import OldVerifyKey, ServerKeys, server_keys_json
from protocol.signing import generate_signing_key, sign_json
from protocol.x_matrix import format_authorization, sign_request
from tests.federation.helpers import CAROL, DAY_MS, FakeNetwork, FakeServer, json_response

pytestmark = pytest.mark.django_db

URI = "/_matrix/federation/v1/media/download/abc?timeout_ms=20000"
factory = RequestFactory()


def _get(uri: str = URI, authorization: str | None = None) -> HttpRequest:
    headers = {"Authorization": authorization} if authorization else {}
    return factory.get(uri, headers=headers)


def _put(uri: str, body: bytes, authorization: str) -> HttpRequest:
    return factory.put(
        uri, body, content_type="application/json", headers={"Authorization": authorization}
    )


def _refused(request: HttpRequest) -> MatrixError:
    with pytest.raises(MatrixError) as caught:
        authenticate_request(request)
    return caught.value


def test_a_signed_request_is_accepted_and_the_key_kept(
    network: FakeNetwork, carol: FakeServer
) -> None:
    auth = authenticate_request(_get(authorization=carol.authorization("GET", URI)))

    assert auth.origin == CAROL
    row = RemoteServerKey.objects.get(server_name=CAROL)
    assert (row.key_id, row.expired_ts, row.fetched_from) == ("ed25519:carol1", None, CAROL)
    assert row.valid_until_ts > now_ms()
    # The next request is checked against the stored key, without asking Carol again.
    authenticate_request(_get(authorization=carol.authorization("GET", URI)))
    assert network.key_fetches(CAROL) == 1


def test_keys_are_fetched_unsigned_from_the_server_itself(
    network: FakeNetwork, carol: FakeServer
) -> None:
    authenticate_request(_get(authorization=carol.authorization("GET", URI)))

    (sent,) = network.sent
    assert (sent.method, sent.path, sent.target.host_header) == (
        "GET",
        "/_matrix/key/v2/server",
        CAROL,
    )
    assert (sent.target.scheme, sent.target.connect_host, sent.target.port) == (
        "https",
        "carol.example",
        8448,
    )
    assert "Authorization" not in sent.headers


def test_without_destination_parameter_old_senders_are_accepted(carol: FakeServer) -> None:
    header = carol.authorization("GET", URI).replace(f',destination="{settings.SERVER_NAME}"', "")
    assert "destination" not in header
    assert authenticate_request(_get(authorization=header)).origin == CAROL


def test_our_own_signature_needs_no_fetch(network: FakeNetwork) -> None:
    auth = sign_request(
        server_signing_key(), "GET", URI, settings.SERVER_NAME, settings.SERVER_NAME
    )
    authenticate_request(_get(authorization=format_authorization(auth)))
    assert network.sent == []


@pytest.mark.parametrize("authorization", [None, "Bearer syt_abc", "Basic dXNlcjpwdw=="])
def test_requests_without_a_signature_are_unauthorized(
    network: FakeNetwork, authorization: str | None
) -> None:
    error = _refused(_get(authorization=authorization))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert network.sent == []


@pytest.mark.parametrize(
    "authorization",
    [
        "X-Matrix ",
        'X-Matrix origin="carol.example:8448",key="ed25519:carol1"',
        'X-Matrix origin="carol.example:8448" key="ed25519:carol1",sig="x"',
        'X-Matrix origin="not a name",key="ed25519:carol1",sig="x"',
        'X-Matrix origin="carol.example:8448",key="rsa:1",sig="x"',
    ],
)
def test_malformed_headers_are_bad_requests(network: FakeNetwork, authorization: str) -> None:
    error = _refused(_get(authorization=authorization))
    assert (error.status, error.errcode) == (400, "M_UNAUTHORIZED")
    assert network.sent == []


def test_a_request_for_another_server_is_unauthorized(
    network: FakeNetwork, carol: FakeServer
) -> None:
    header = carol.authorization("GET", URI, destination="other.example")
    error = _refused(_get(authorization=header))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert network.sent == []


def test_a_bad_signature_is_unauthorized(carol: FakeServer) -> None:
    impostor = generate_signing_key("carol1")
    auth = sign_request(impostor, "GET", URI, CAROL, settings.SERVER_NAME)
    error = _refused(_get(authorization=format_authorization(auth)))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")


@pytest.mark.parametrize(
    "signed_uri",
    [
        "/_matrix/federation/v1/media/download/abc",  # the query is part of what is signed
        "/_matrix/federation/v1/media/download/abd?timeout_ms=20000",
        "/_matrix/federation/v1/media/download/abc?timeout_ms=20001",
    ],
)
def test_a_signature_for_another_target_is_unauthorized(
    carol: FakeServer, signed_uri: str
) -> None:
    error = _refused(_get(authorization=carol.authorization("GET", signed_uri)))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")


def test_a_signature_for_another_method_is_unauthorized(carol: FakeServer) -> None:
    error = _refused(_get(authorization=carol.authorization("PUT", URI, content={})))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")


def test_an_unknown_key_is_unauthorized_and_not_stored(
    network: FakeNetwork, carol: FakeServer
) -> None:
    stranger = generate_signing_key("other")
    auth = sign_request(stranger, "GET", URI, CAROL, settings.SERVER_NAME)

    error = _refused(_get(authorization=format_authorization(auth)))

    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert not RemoteServerKey.objects.filter(key_id="ed25519:other").exists()
    # Asking again within a minute does not make us fetch again.
    _refused(_get(authorization=format_authorization(auth)))
    assert network.key_fetches(CAROL) == 1


def test_an_unreachable_key_server_is_unauthorized_remembered_and_nothing_stored(
    network: FakeNetwork, carol: FakeServer
) -> None:
    carol.reachable = False

    error = _refused(_get(authorization=carol.authorization("GET", URI)))

    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert not RemoteServerKey.objects.exists()
    _refused(_get(authorization=carol.authorization("GET", URI)))
    assert network.key_fetches(CAROL) == 1


def test_an_unknown_server_is_unauthorized(network: FakeNetwork) -> None:
    nobody = FakeServer("nobody.example:8448")
    error = _refused(_get(authorization=nobody.authorization("GET", URI)))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert not RemoteServerKey.objects.exists()


def _other_key_signature(obj: dict[str, Any]) -> dict[str, Any]:
    del obj["signatures"]
    return sign_json(obj, CAROL, generate_signing_key("carol1"))


def _tampered(obj: dict[str, Any]) -> dict[str, Any]:
    obj["valid_until_ts"] += 1
    return obj


def _for_another_server(obj: dict[str, Any]) -> dict[str, Any]:
    obj["server_name"] = "dave.example"
    return obj


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_other_key_signature, id="signed by another key"),
        pytest.param(_tampered, id="changed after signing"),
        pytest.param(_for_another_server, id="another server's response"),
        pytest.param(lambda o: {k: v for k, v in o.items() if k != "signatures"}, id="unsigned"),
    ],
)
def test_a_key_response_without_a_valid_self_signature_is_refused_and_not_cached(
    network: FakeNetwork, carol: FakeServer, mutate: Any
) -> None:
    carol.mutate_keys = mutate

    error = _refused(_get(authorization=carol.authorization("GET", URI)))

    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert not RemoteServerKey.objects.exists()


@pytest.mark.parametrize(
    "response",
    [
        json_response({"errcode": "M_UNKNOWN"}, status=500),
        json_response([1, 2]),
        json_response("keys"),
    ],
)
def test_a_key_server_answering_nonsense_is_unauthorized(carol: FakeServer, response: Any) -> None:
    carol.routes["/_matrix/key/v2/server"] = response
    error = _refused(_get(authorization=carol.authorization("GET", URI)))
    assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")
    assert not RemoteServerKey.objects.exists()


def test_a_key_past_its_validity_does_not_verify_requests(carol: FakeServer) -> None:
    def expired(obj: dict[str, Any]) -> dict[str, Any]:
        return server_keys_json(CAROL, [carol.signing_key], now_ms() - 60_000)

    carol.mutate_keys = expired
    error = _refused(_get(authorization=carol.authorization("GET", URI)))
    assert error.status == 401


def test_an_old_verify_key_does_not_verify_requests(carol: FakeServer) -> None:
    from protocol.server_keys import OldVerifyKey

    current = generate_signing_key("carol2")

    def rotated(obj: dict[str, Any]) -> dict[str, Any]:
        old = {"ed25519:carol1": OldVerifyKey(carol.signing_key.verify_key, now_ms() + DAY_MS)}
        return server_keys_json(CAROL, [current], now_ms() + DAY_MS, old)

    carol.mutate_keys = rotated
    error = _refused(_get(authorization=carol.authorization("GET", URI)))

    assert error.status == 401
    old = RemoteServerKey.objects.get(key_id="ed25519:carol1")
    assert old.expired_ts is not None
    # It still verifies events signed before it expired.
    assert keyring.get_verify_key(
        CAROL, "ed25519:carol1", valid_at_ts=now_ms(), for_requests=False
    )


def test_a_stored_key_is_read_once_and_a_newer_response_is_seen_at_once(
    carol: FakeServer, django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    authenticate_request(_get(authorization=carol.authorization("GET", URI)))
    key_id = carol.signing_key.key_id
    # Kept in process: a send_join answer verifies thousands of events with it.
    with django_assert_num_queries(0):
        for _ in range(3):
            keyring.get_verify_key(CAROL, key_id, valid_at_ts=now_ms(), for_requests=False)

    # Carol's newer response retires it, stored here: the next reader sees that.
    old = {key_id: OldVerifyKey(carol.signing_key.verify_key, now_ms() - 60_000)}
    retired = ServerKeys(CAROL, {}, old, now_ms() + DAY_MS)
    do_store_server_keys(retired, fetched_ts=now_ms(), fetched_from=CAROL)
    carol.reachable = False
    with pytest.raises(keyring.KeyUnavailable):
        keyring.get_verify_key(CAROL, key_id, valid_at_ts=now_ms(), for_requests=False)
    # It still verifies what it signed before then.
    assert keyring.get_verify_key(
        CAROL, key_id, valid_at_ts=now_ms() - 120_000, for_requests=False
    )

    # What another process stores is seen once what was read here is TTL_S old.
    RemoteServerKey.objects.filter(key_id=key_id).update(expired_ts=now_ms() - 180_000)
    assert keyring.get_verify_key(
        CAROL, key_id, valid_at_ts=now_ms() - 120_000, for_requests=False
    )
    monkeypatch.setattr(key_cache, "TTL_S", 0.0)
    with pytest.raises(keyring.KeyUnavailable):
        keyring.get_verify_key(CAROL, key_id, valid_at_ts=now_ms() - 120_000, for_requests=False)


def test_a_key_is_not_believed_beyond_seven_days(carol: FakeServer) -> None:
    carol.mutate_keys = lambda obj: server_keys_json(
        CAROL, [carol.signing_key], now_ms() + 365 * DAY_MS
    )
    authenticate_request(_get(authorization=carol.authorization("GET", URI)))
    assert RemoteServerKey.objects.get().valid_until_ts <= now_ms() + 7 * DAY_MS


class TestBodies:
    PUT_URI = "/_matrix/federation/v1/send/1"

    def test_the_body_is_signed(self, carol: FakeServer) -> None:
        content = {"pdus": [], "origin": CAROL}
        header = carol.authorization("PUT", self.PUT_URI, content=content)
        body = json.dumps(content).encode()
        assert authenticate_request(_put(self.PUT_URI, body, header)).origin == CAROL

    def test_a_changed_body_is_unauthorized(self, carol: FakeServer) -> None:
        header = carol.authorization("PUT", self.PUT_URI, content={"pdus": []})
        error = _refused(_put(self.PUT_URI, b'{"pdus": [{}]}', header))
        assert (error.status, error.errcode) == (401, "M_UNAUTHORIZED")

    def test_a_body_that_is_not_json_is_a_bad_request(
        self, network: FakeNetwork, carol: FakeServer
    ) -> None:
        header = carol.authorization("PUT", self.PUT_URI, content={})
        error = _refused(_put(self.PUT_URI, b"{not json", header))
        assert (error.status, error.errcode) == (400, "M_NOT_JSON")
        assert network.sent == []


class TestNotaries:
    NOTARY = "notary.example:8448"

    @pytest.fixture
    def notary(self, network: FakeNetwork, settings: Any, carol: FakeServer) -> FakeServer:
        settings.FEDERATION_KEY_NOTARIES = [self.NOTARY]
        notary = network.add(self.NOTARY, signing_key=generate_signing_key("n1"))
        carol.reachable = False
        return notary

    def _serve(self, notary: FakeServer, carol: FakeServer, *, sign: bool = True) -> None:
        response = carol.key_response()
        if sign:
            response = sign_json(response, self.NOTARY, notary.signing_key)
        notary.routes[f"/_matrix/key/v2/query/{CAROL.replace(':', '%3A')}"] = json_response(
            {"server_keys": [response]}
        )

    def test_keys_vouched_for_by_a_notary_are_used(
        self, notary: FakeServer, carol: FakeServer
    ) -> None:
        self._serve(notary, carol)

        authenticate_request(_get(authorization=carol.authorization("GET", URI)))

        row = RemoteServerKey.objects.get(server_name=CAROL)
        assert row.fetched_from == self.NOTARY

    def test_keys_the_notary_did_not_sign_are_refused(
        self, notary: FakeServer, carol: FakeServer
    ) -> None:
        self._serve(notary, carol, sign=False)

        error = _refused(_get(authorization=carol.authorization("GET", URI)))

        assert error.status == 401
        assert not RemoteServerKey.objects.filter(server_name=CAROL).exists()

    def test_keys_a_notary_changed_are_refused(
        self, notary: FakeServer, carol: FakeServer
    ) -> None:
        response = copy.deepcopy(carol.key_response())
        response["verify_keys"]["ed25519:carol1"]["key"] = "A" * 43
        notary.routes[f"/_matrix/key/v2/query/{CAROL.replace(':', '%3A')}"] = json_response(
            {"server_keys": [sign_json(response, self.NOTARY, notary.signing_key)]}
        )

        error = _refused(_get(authorization=carol.authorization("GET", URI)))

        assert error.status == 401
        assert not RemoteServerKey.objects.filter(server_name=CAROL).exists()


# --- the signed target is the raw one -----------------------------------------------------

# An event ID as Synapse sends it in a path: every reserved character escaped ($ as %24).
ENCODED = "/_matrix/federation/v1/event/%24abc%3Adef?x=%40carol%3Acarol.example"
DECODED = "/_matrix/federation/v1/event/$abc:def?x=%40carol%3Acarol.example"


def _wsgi(uri: str, authorization: str) -> HttpRequest:
    """A request as a WSGI server hands it over: PATH_INFO decoded, RAW_URI as sent."""
    return factory.get(uri, headers={"Authorization": authorization}, RAW_URI=uri)


def _asgi(uri: str, authorization: str) -> HttpRequest:
    """A request as Daphne hands it over: ``path`` decoded, ``raw_path`` as sent."""
    raw_path, _, query = uri.partition("?")
    scope = {
        "type": "http",
        "method": "GET",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"authorization", authorization.encode())],
    }
    return ASGIRequest(scope, BytesIO(b""))


@pytest.mark.parametrize("make", [_wsgi, _asgi], ids=["wsgi", "asgi"])
def test_a_percent_encoded_target_is_verified_as_sent(carol: FakeServer, make: Any) -> None:
    assert authenticate_request(make(ENCODED, carol.authorization("GET", ENCODED))).origin == CAROL
    # Signed over the decoded path, which was not what was sent: refused.
    assert _refused(make(ENCODED, carol.authorization("GET", DECODED))).errcode == (
        "M_UNAUTHORIZED"
    )


def test_an_absolute_form_raw_uri_is_verified_by_its_path_and_query(carol: FakeServer) -> None:
    request = factory.get(
        ENCODED,
        headers={"Authorization": carol.authorization("GET", ENCODED)},
        RAW_URI="https://localhost:8448" + ENCODED,
    )
    assert authenticate_request(request).origin == CAROL
