"""Bad input to the key backup endpoints: a Matrix error, and nothing stored or changed."""

from __future__ import annotations

from typing import Any

import pytest

from keybackup.models import BackupSession, BackupVersion
from tests.conftest import MatrixTestClient, Persona
from tests.keybackup.helpers import ALGORITHM, AUTH_DATA, ROOM, create_version, key, keys_path


def snapshot() -> list[Any]:
    """Everything stored about backups, to compare before and after a refused request."""
    return [
        list(BackupVersion.objects.order_by("pk").values()),
        list(BackupSession.objects.order_by("pk").values()),
    ]


@pytest.fixture
def version(api: MatrixTestClient, alice: Persona) -> str:
    """A backup holding one key, so that a refused request has something to spoil."""
    version = create_version(api, alice)
    assert api.put(keys_path(version, ROOM, "s1"), key(), token=alice.access_token).status == 200
    return version


def refused(
    api: MatrixTestClient,
    alice: Persona,
    method: str,
    path: str,
    body: Any,
    errcode: str,
    status: int = 400,
) -> None:
    before = snapshot()
    raw = body if isinstance(body, bytes) else None
    response = api.request(method, path, None if raw else body, raw=raw, token=alice.access_token)
    assert response.status == status, response.body
    assert response.errcode == errcode, response.body
    assert isinstance(response.body["error"], str)
    assert snapshot() == before


BAD_VERSION_BODIES = [
    pytest.param(b"not json", "M_NOT_JSON", id="not-json"),
    pytest.param(b"", "M_NOT_JSON", id="empty"),
    pytest.param([], "M_BAD_JSON", id="array"),
    pytest.param("text", "M_BAD_JSON", id="string"),
    pytest.param({"auth_data": AUTH_DATA}, "M_MISSING_PARAM", id="no-algorithm"),
    pytest.param({"algorithm": ALGORITHM}, "M_MISSING_PARAM", id="no-auth-data"),
    pytest.param({"algorithm": 1, "auth_data": AUTH_DATA}, "M_BAD_JSON", id="algorithm-int"),
    pytest.param({"algorithm": ALGORITHM, "auth_data": []}, "M_BAD_JSON", id="auth-data-array"),
    pytest.param({"algorithm": ALGORITHM, "auth_data": "x"}, "M_BAD_JSON", id="auth-data-str"),
    pytest.param({"algorithm": ALGORITHM, "auth_data": {}}, "M_MISSING_PARAM", id="no-public-key"),
    pytest.param(
        {"algorithm": ALGORITHM, "auth_data": {"public_key": 5}}, "M_BAD_JSON", id="key-int"
    ),
    pytest.param(
        {"algorithm": ALGORITHM, "auth_data": {"public_key": ""}},
        "M_INVALID_PARAM",
        id="key-empty",
    ),
    pytest.param(
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "k", "signatures": []}},
        "M_BAD_JSON",
        id="signatures-array",
    ),
    pytest.param(
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "k\u0000"}},
        "M_BAD_JSON",
        id="nul",
    ),
]


@pytest.mark.parametrize(("body", "errcode"), BAD_VERSION_BODIES)
def test_create_refuses(
    api: MatrixTestClient, alice: Persona, version: str, body: Any, errcode: str
) -> None:
    refused(api, alice, "POST", "room_keys/version", body, errcode)


def test_create_refuses_an_unknown_algorithm(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    body = {"algorithm": "org.example.unknown", "auth_data": AUTH_DATA}
    refused(api, alice, "POST", "room_keys/version", body, "M_INVALID_PARAM")


@pytest.mark.parametrize(("body", "errcode"), BAD_VERSION_BODIES)
def test_update_refuses(
    api: MatrixTestClient, alice: Persona, version: str, body: Any, errcode: str
) -> None:
    refused(api, alice, "PUT", f"room_keys/version/{version}", body, errcode)


def test_update_refuses_a_version_of_the_wrong_type(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    body = {"algorithm": ALGORITHM, "auth_data": AUTH_DATA, "version": int(version)}
    refused(api, alice, "PUT", f"room_keys/version/{version}", body, "M_BAD_JSON")


GOOD = key()
BAD_KEYS = [
    pytest.param("x", "M_BAD_JSON", id="string"),
    pytest.param([GOOD], "M_BAD_JSON", id="array"),
    pytest.param({**GOOD, "first_message_index": -1}, "M_INVALID_PARAM", id="negative-index"),
    pytest.param({**GOOD, "forwarded_count": -3}, "M_INVALID_PARAM", id="negative-forwards"),
    pytest.param({**GOOD, "first_message_index": 2**63}, "M_INVALID_PARAM", id="huge-index"),
    pytest.param({**GOOD, "first_message_index": 1.5}, "M_BAD_JSON", id="float-index"),
    pytest.param({**GOOD, "first_message_index": "1"}, "M_BAD_JSON", id="string-index"),
    pytest.param({**GOOD, "forwarded_count": True}, "M_BAD_JSON", id="bool-forwards"),
    pytest.param({**GOOD, "is_verified": "true"}, "M_BAD_JSON", id="string-verified"),
    pytest.param({**GOOD, "is_verified": 1}, "M_BAD_JSON", id="int-verified"),
    pytest.param({**GOOD, "session_data": "abc"}, "M_BAD_JSON", id="string-session-data"),
    pytest.param({**GOOD, "session_data": None}, "M_BAD_JSON", id="null-session-data"),
    *(
        pytest.param(
            {k: v for k, v in GOOD.items() if k != field}, "M_MISSING_PARAM", id=f"no-{field}"
        )
        for field in GOOD
    ),
]


@pytest.mark.parametrize(("data", "errcode"), BAD_KEYS)
def test_upload_of_one_key_refuses(
    api: MatrixTestClient, alice: Persona, version: str, data: Any, errcode: str
) -> None:
    refused(api, alice, "PUT", keys_path(version, ROOM, "s2"), data, errcode)


@pytest.mark.parametrize(("data", "errcode"), BAD_KEYS)
def test_upload_for_a_room_refuses_a_bad_key_among_good_ones(
    api: MatrixTestClient, alice: Persona, version: str, data: Any, errcode: str
) -> None:
    body = {"sessions": {"good": GOOD, "s1": key(0, 0, True), "bad": data}}
    refused(api, alice, "PUT", keys_path(version, ROOM), body, errcode)


@pytest.mark.parametrize(("data", "errcode"), BAD_KEYS)
def test_bulk_upload_refuses_a_bad_key_among_good_ones(
    api: MatrixTestClient, alice: Persona, version: str, data: Any, errcode: str
) -> None:
    body = {
        "rooms": {
            "!a:localhost:8008": {"sessions": {"good": GOOD}},
            ROOM: {"sessions": {"s1": key(0, 0, True), "bad": data}},
        }
    }
    refused(api, alice, "PUT", keys_path(version), body, errcode)


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        pytest.param(b"{", "M_NOT_JSON", id="not-json"),
        pytest.param([], "M_BAD_JSON", id="array"),
        pytest.param({}, "M_MISSING_PARAM", id="no-rooms"),
        pytest.param({"rooms": []}, "M_BAD_JSON", id="rooms-array"),
        pytest.param({"rooms": {ROOM: []}}, "M_BAD_JSON", id="room-array"),
        pytest.param({"rooms": {ROOM: {}}}, "M_MISSING_PARAM", id="no-sessions"),
        pytest.param({"rooms": {ROOM: {"sessions": []}}}, "M_BAD_JSON", id="sessions-array"),
        pytest.param(
            {"rooms": {"room:localhost": {"sessions": {"s": GOOD}}}},
            "M_INVALID_PARAM",
            id="room-id-without-sigil",
        ),
        pytest.param(
            {"rooms": {"#alias:localhost": {"sessions": {"s": GOOD}}}},
            "M_INVALID_PARAM",
            id="room-alias",
        ),
        pytest.param({"rooms": {"!": {"sessions": {}}}}, "M_INVALID_PARAM", id="bare-sigil"),
        pytest.param(
            {"rooms": {"!" + "r" * 300: {"sessions": {}}}}, "M_INVALID_PARAM", id="long-room-id"
        ),
        pytest.param(
            {"rooms": {ROOM: {"sessions": {"": GOOD}}}}, "M_INVALID_PARAM", id="empty-session-id"
        ),
        pytest.param(
            {"rooms": {ROOM: {"sessions": {"s" * 256: GOOD}}}},
            "M_INVALID_PARAM",
            id="long-session-id",
        ),
    ],
)
def test_bulk_upload_refuses(
    api: MatrixTestClient, alice: Persona, version: str, body: Any, errcode: str
) -> None:
    refused(api, alice, "PUT", keys_path(version), body, errcode)


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        pytest.param(b"nope", "M_NOT_JSON", id="not-json"),
        pytest.param(5, "M_BAD_JSON", id="number"),
        pytest.param({}, "M_MISSING_PARAM", id="no-sessions"),
        pytest.param({"sessions": "x"}, "M_BAD_JSON", id="sessions-string"),
        pytest.param({"sessions": {"": GOOD}}, "M_INVALID_PARAM", id="empty-session-id"),
    ],
)
def test_upload_for_a_room_refuses(
    api: MatrixTestClient, alice: Persona, version: str, body: Any, errcode: str
) -> None:
    refused(api, alice, "PUT", keys_path(version, ROOM), body, errcode)


@pytest.mark.parametrize("room_id", ["room:localhost", "#alias:localhost", "!" + "r" * 300])
def test_a_malformed_room_id_in_the_path_is_refused(
    api: MatrixTestClient, alice: Persona, version: str, room_id: str
) -> None:
    for method, body in (("PUT", {"sessions": {"s": GOOD}}), ("GET", None), ("DELETE", None)):
        refused(api, alice, method, keys_path(version, room_id), body, "M_INVALID_PARAM")
    for method, body in (("PUT", GOOD), ("GET", None), ("DELETE", None)):
        refused(api, alice, method, keys_path(version, room_id, "s1"), body, "M_INVALID_PARAM")


def test_a_long_session_id_in_the_path_is_refused(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    for method, body in (("PUT", GOOD), ("GET", None), ("DELETE", None)):
        path = keys_path(version, ROOM, "s" * 256)
        refused(api, alice, method, path, body, "M_INVALID_PARAM")


def test_the_version_parameter_is_required(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    calls = [
        ("PUT", "room_keys/keys", {"rooms": {}}),
        ("PUT", f"room_keys/keys/{ROOM}", {"sessions": {}}),
        ("PUT", f"room_keys/keys/{ROOM}/s2", GOOD),
    ]
    calls += [
        (method, path, None)
        for method in ("GET", "DELETE")
        for path in ("room_keys/keys", f"room_keys/keys/{ROOM}", f"room_keys/keys/{ROOM}/s1")
    ]
    for method, path, body in calls:
        refused(api, alice, method, path, body, "M_MISSING_PARAM")


def test_a_nul_in_a_parameter_is_refused(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    refused(api, alice, "GET", f"room_keys/keys?version={version}%00", None, "M_INVALID_PARAM")
    refused(api, alice, "DELETE", "room_keys/version/1%00", None, "M_INVALID_PARAM")
