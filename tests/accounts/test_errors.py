"""How every Matrix endpoint fails: standard error responses, never a 500 or HTML.

Client-Server API, "Standard error response", "Common error codes" and "Web Browser
Clients" (CORS).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from accounts.models import User
from tests.conftest import MatrixTestClient, Persona

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


def assert_matrix_error(response: Any, status: int, errcode: str) -> None:
    assert response.status == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.errcode == errcode
    assert isinstance(response.body["error"], str)


# --- Unknown endpoints and methods ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_matrix/client/v3/nonsense"),
        ("POST", "/_matrix/client/v3/rooms/!a:b/unknown"),
        ("GET", "/_matrix/client/v3/login/"),
        ("GET", "/_matrix/client/v2/login"),
        ("GET", "/_matrix/nothing"),
        ("PUT", "/_synapse/admin/v1/nothing"),
    ],
)
def test_an_unknown_endpoint_is_404_unrecognized(
    api: MatrixTestClient, method: str, path: str
) -> None:
    assert_matrix_error(api.request(method, path, {}), 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "logout"),
        ("PUT", "login"),
        ("DELETE", "register"),
        ("POST", "account/whoami"),
        ("POST", "/_matrix/client/versions"),
    ],
)
def test_a_known_endpoint_with_the_wrong_method_is_405_unrecognized(
    api: MatrixTestClient, alice: Persona, method: str, path: str
) -> None:
    response = api.request(method, path, {}, token=alice.access_token)

    assert_matrix_error(response, 405, "M_UNRECOGNIZED")


# --- Bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{", b"", b"\xff\xfe{}", b'{"a": NaN}', b'{"a": Infinity}', b"[" * 100_000],
)
def test_a_body_that_is_not_json_is_m_not_json(api: MatrixTestClient, raw: bytes) -> None:
    assert_matrix_error(api.request("POST", "login", raw=raw), 400, "M_NOT_JSON")


@pytest.mark.parametrize("raw", [b"[]", b'"login"', b"42", b"null", b"true"])
def test_a_json_body_that_is_not_an_object_is_m_bad_json(
    api: MatrixTestClient, raw: bytes
) -> None:
    assert_matrix_error(api.request("POST", "login", raw=raw), 400, "M_BAD_JSON")


def test_the_content_type_is_not_needed(api: MatrixTestClient, alice: Persona) -> None:
    body = (
        b'{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},'
        b' "password": "correct horse"}'
    )

    response = api.request("POST", "login", raw=body, content_type="text/plain")

    assert response.status == 200
    assert response.body["user_id"] == alice.user_id


@pytest.mark.parametrize(
    "body",
    [
        {"type": 1, "user": "alice", "password": "x"},
        {"type": "m.login.password", "user": "alice", "password": 12345},
        {"type": "m.login.password", "user": ["alice"], "password": "x"},
        {"type": "m.login.password", "identifier": "alice", "password": "x"},
        {"type": "m.login.password", "user": "alice", "password": "x", "device_id": 7},
        {"type": "m.login.password", "user": "alice", "password": "x", "refresh_token": "yes"},
    ],
)
def test_a_field_of_the_wrong_type_is_m_bad_json(
    api: MatrixTestClient, alice: Persona, body: dict[str, Any]
) -> None:
    assert_matrix_error(api.post("login", body), 400, "M_BAD_JSON")


def test_a_missing_required_field_is_m_missing_param(api: MatrixTestClient) -> None:
    response = api.post("login", {"user": "alice", "password": "x"})

    assert_matrix_error(response, 400, "M_MISSING_PARAM")


def test_a_body_over_the_limit_is_413_too_large(api: MatrixTestClient) -> None:
    padding = "x" * settings.MAX_REQUEST_BYTES
    raw = ('{"username": "carol", "password": "' + padding + '"}').encode()

    response = api.request("POST", "register", raw=raw)

    assert_matrix_error(response, 413, "M_TOO_LARGE")
    assert not User.objects.filter(localpart="carol").exists()


# --- Values the database cannot hold ---------------------------------------------------


def test_an_over_long_device_id_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = api.login("alice", alice.password, device_id="D" * 256)

    assert_matrix_error(response, 400, "M_INVALID_PARAM")


def test_an_over_long_device_display_name_is_refused(
    api: MatrixTestClient, alice: Persona
) -> None:
    login = api.login("alice", alice.password, initial_device_display_name="n" * 1000)
    rename = api.put(
        f"devices/{alice.device_id}", {"display_name": "n" * 1000}, token=alice.access_token
    )

    assert_matrix_error(login, 400, "M_INVALID_PARAM")
    assert_matrix_error(rename, 400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "profile/{user_id}/displayname", {"displayname": "a\u0000b"}),
        ("PUT", "profile/{user_id}/org.example.x", {"org.example.x": {"k\u0000": 1}}),
        ("PUT", "user/{user_id}/account_data/org.example.x", {"a": "\u0000"}),
        ("PUT", "devices/{device_id}", {"display_name": "\u0000"}),
        ("POST", "user/{user_id}/filter", {"room": {"rooms": ["!\u0000"]}}),
    ],
)
def test_a_nul_character_is_refused_not_a_500(
    api: MatrixTestClient, alice: Persona, method: str, path: str, body: dict[str, Any]
) -> None:
    # PostgreSQL cannot store U+0000 in text or jsonb.
    path = path.format(user_id=alice.user_id, device_id=alice.device_id)

    response = api.request(method, path, body, token=alice.access_token)

    assert_matrix_error(response, 400, "M_BAD_JSON")


@pytest.mark.parametrize(
    "path",
    [
        "devices/%00",
        "user/{user_id}/account_data/a%00b",
        "user/{user_id}/filter/%00",
        "account/whoami?x=%00",
        "account/whoami?%00=x",
    ],
)
def test_a_nul_character_in_the_path_or_query_is_refused(
    api: MatrixTestClient, alice: Persona, path: str
) -> None:
    response = api.get(path.format(user_id=alice.user_id), token=alice.access_token)

    assert_matrix_error(response, 400, "M_INVALID_PARAM")


def test_registration_checks_the_device_id_before_creating_the_user(
    api: MatrixTestClient,
) -> None:
    response = api.post(
        "register", {"username": "carol", "password": "pw", "device_id": "D" * 256}
    )

    assert_matrix_error(response, 400, "M_INVALID_PARAM")
    assert not User.objects.filter(localpart="carol").exists()


# --- CORS ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/login",
        "/_matrix/client/v3/account/whoami",
        "/_matrix/client/v3/nonsense",
        "/_matrix/client/versions",
        "/.well-known/matrix/client",
    ],
)
def test_every_matrix_response_carries_cors_headers(api: MatrixTestClient, path: str) -> None:
    response = api.get(path)

    for header, value in CORS.items():
        assert response.headers[header] == value


@pytest.mark.parametrize(
    "path", ["/_matrix/client/v3/logout", "/_matrix/client/v3/nonsense", "/_matrix/x/y"]
)
def test_options_is_answered_on_any_matrix_path_without_running_the_endpoint(
    api: MatrixTestClient, alice: Persona, path: str
) -> None:
    response = api.request("OPTIONS", path, token=alice.access_token)

    assert response.status == 200
    for header, value in CORS.items():
        assert response.headers[header] == value
    assert api.get("account/whoami", token=alice.access_token).status == 200


# --- Old clients -------------------------------------------------------------------


def test_r0_paths_answer_like_v3(api: MatrixTestClient, alice: Persona) -> None:
    flows = api.get("/_matrix/client/r0/login")
    login = api.post(
        "/_matrix/client/r0/login",
        {"type": "m.login.password", "user": "alice", "password": alice.password},
    )

    assert flows.status == 200
    assert flows.body == api.get("login").body
    assert login.status == 200
    assert (
        api.get("/_matrix/client/r0/account/whoami", token=login.body["access_token"]).status
        == 200
    )


# --- Never a 500, never HTML -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "register", b'{"auth": {"session": 5}}'),
        ("POST", "register", b'{"auth": {"type": 5}}'),
        ("POST", "register", b'{"auth": {"type": ["m.login.dummy"]}}'),
        ("POST", "register", b'{"username": "", "auth": []}'),
        ("POST", "login", b'{"type": "m.login.password", "identifier": {"type": "m.id.user"}}'),
        ("POST", "login", b'{"type": "m.login.password", "identifier": {"user": "a"}}'),
        ("POST", "login", b'{"type": "m.login.password", "user": "@", "password": "x"}'),
        ("POST", "login", b'{"type": "m.login.password", "user": "@a:b:c:d", "password": "x"}'),
        ("POST", "refresh", b'{"refresh_token": null}'),
        ("GET", "profile/@", b""),
        ("GET", "register/available?username=", b""),
        ("GET", "user/@x:y/filter/1", b""),
        ("POST", "/_synapse/admin/v1/register", b"{}"),
    ],
)
def test_odd_requests_get_a_matrix_error(
    api: MatrixTestClient, method: str, path: str, raw: bytes
) -> None:
    response = api.request(method, path, raw=raw)

    assert 400 <= response.status < 500, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.errcode, str)


def test_values_that_cannot_be_stored_are_refused_with_bad_json(
    api: MatrixTestClient, alice: Persona
) -> None:
    path = f"user/{alice.user_id}/account_data/org.example.x"
    for raw in (b'{"a": 1e400}', b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b'{"a": "\\u0000"}'):
        response = api.request("PUT", path, raw=raw, token=alice.access_token)
        assert response.status == 400, raw
        assert response.errcode == "M_BAD_JSON"
    assert api.get(path, token=alice.access_token).status == 404
