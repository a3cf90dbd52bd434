"""The user admin API (/_synapse/admin/.../users...) answers in Synapse's shapes: the
same requests to a Trellis and a Synapse, the answers compared field by field."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.admin_compare import (
    AdminPair,
    AdminServer,
    admin_pair,  # noqa: F401 (the fixture)
    assert_same_answer,
    assert_same_shape,
    quoted,
    shape,
)

pytestmark = pytest.mark.live

# How long a redaction job may take to finish on either server.
JOB_WAIT_S = 60


def test_shared_secret_registration_answers_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    trellis, synapse = admin_pair.servers
    ours, theirs = trellis.fresh_user(), synapse.fresh_user()
    assert ours.user_id.endswith(trellis.server_name)
    assert theirs.user_id.endswith(synapse.server_name)
    assert_same_answer(admin_pair.both("GET", "/_matrix/client/v3/account/whoami", token="alice"))


def test_shape_compares_types_and_lists_by_items() -> None:
    assert shape({"a": [{"b": 1}, {"c": None}], "d": "x"}) == {
        "a": [{"b": "integer", "c": "null"}],
        "d": "string",
    }
    assert_same_shape({"a": [], "b": None}, {"a": [{"x": 1}], "b": "s"})
    with pytest.raises(AssertionError, match="b: Trellis integer, Synapse string"):
        assert_same_shape({"b": 1}, {"b": "s"})
    with pytest.raises(AssertionError, match="missing in Trellis"):
        assert_same_shape({}, {"b": "s"})
    assert_same_shape({"a": {"b": 1}}, {"a": {"c": 1}}, ignore=["a.b", "a.c"])


def user_path(template: str) -> Callable[[AdminServer], str]:
    """A path naming one of the server's users: ``{alice}`` -> @alice:<its name>."""

    def resolve(server: AdminServer) -> str:
        return template.format(
            **{name: quoted(account.user_id) for name, account in server.accounts.items()}
        )

    return resolve


# Read-only requests both servers answer from the same fixture users.
READS = [
    ("/_synapse/admin/v2/users", ()),
    ("/_synapse/admin/v2/users?limit=1", ()),
    ("/_synapse/admin/v3/users?deactivated=false&admins=false", ()),
    ("/_synapse/admin/v2/users/{alice}", ()),
    ("/_synapse/admin/v1/users/{alice}/admin", ()),
    ("/_synapse/admin/v1/users/{alice}/joined_rooms", ()),
    ("/_synapse/admin/v1/users/{alice}/media", ()),
    ("/_synapse/admin/v1/users/{alice}/override_ratelimit", ()),
    ("/_synapse/admin/v2/users/{alice}/devices", ()),
    ("/_synapse/admin/v1/registration_tokens", ()),
    ("/_synapse/admin/v1/server_version", ()),
]


@pytest.mark.parametrize(("path", "ignore"), READS)
def test_reads_answer_alike(admin_pair: AdminPair, path: str, ignore: tuple[str, ...]) -> None:  # noqa: F811
    assert_same_answer(admin_pair.both("GET", user_path(path)), ignore)


def assert_whois_alike(answers: tuple[tuple[int, Any], tuple[int, Any]]) -> None:
    """Whois answers keyed by device: the spec keys them by device ID, Synapse's by what
    it logged of each request (""); compare the shape of one device's sessions."""
    (ours_status, ours), (theirs_status, theirs) = answers
    assert ours_status == theirs_status == 200, answers
    assert set(ours) == set(theirs) == {"user_id", "devices"}
    assert_same_shape(next(iter(ours["devices"].values())), next(iter(theirs["devices"].values())))


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/_synapse/admin/v1/whois/{alice}", "admin"),
        ("/_matrix/client/v3/admin/whois/{alice}", "alice"),
    ],
)
def test_whois_answers_alike(admin_pair: AdminPair, path: str, token: str) -> None:  # noqa: F811
    assert_whois_alike(admin_pair.both("GET", user_path(path), token=token))


def test_whois_of_another_user_is_refused_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    answers = admin_pair.both(
        "GET", user_path("/_matrix/client/v3/admin/whois/{bob}"), token="alice"
    )
    assert answers[0][0] == 403
    assert_same_answer(answers)


# Unknown users are 404 M_NOT_FOUND here everywhere. Synapse differs on two endpoints,
# left out: GET /v1/users/{userId}/admin answers 200 {"admin": false}, and POST
# /v1/users/{userId}/shadow_ban a 400 M_UNKNOWN "No row found".
ERRORS = [
    ("GET", "/_synapse/admin/v2/users", None, "alice"),
    ("GET", "/_synapse/admin/v2/users/@nobody:{server_name}", None, "admin"),
    ("GET", "/_synapse/admin/v2/users/@nobody:{server_name}/devices", None, "admin"),
    ("GET", "/_synapse/admin/v2/users?order_by=bogus", None, "admin"),
    ("GET", "/_synapse/admin/v2/users?limit=-1", None, "admin"),
    ("GET", "/_synapse/admin/v2/users?dir=x", None, "admin"),
    ("GET", "/_synapse/admin/v2/users?deactivated=maybe", None, "admin"),
    ("GET", "/_synapse/admin/v1/registration_tokens/nope", None, "admin"),
    ("GET", "/_synapse/admin/v1/user/redact_status/nope", None, "admin"),
    ("PUT", "/_synapse/admin/v1/suspend/@nobody:{server_name}", {"suspend": True}, "admin"),
    ("POST", "/_synapse/admin/v1/users/@nobody:{server_name}/login", {}, "admin"),
]


@pytest.mark.parametrize(("method", "path", "body", "token"), ERRORS)
def test_errors_answer_alike(
    admin_pair: AdminPair,  # noqa: F811
    method: str,
    path: str,
    body: Any,
    token: str,
) -> None:
    assert_same_answer(admin_pair.both(method, path, body, token=token))


def test_create_and_modify_user_answer_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    name = f"made{secrets.token_hex(3)}"
    path = f"/_synapse/admin/v2/users/@{name}:{{server_name}}"
    created = admin_pair.both(
        "PUT", path, {"password": "a long enough password", "displayname": "Made"}
    )
    assert created[0][0] == created[1][0] == 201
    assert_same_answer(created)
    assert_same_answer(admin_pair.both("PUT", path, {"admin": True, "locked": True}))
    assert_same_answer(admin_pair.both("GET", path))


def test_moderation_answers_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    for server in admin_pair.servers:
        server.accounts["target"] = server.fresh_user("target")
    steps = [
        ("PUT", "/_synapse/admin/v1/suspend/{target}", {"suspend": True}),
        ("PUT", "/_synapse/admin/v1/suspend/{target}", {"suspend": False}),
        ("POST", "/_synapse/admin/v1/users/{target}/shadow_ban", {}),
        ("DELETE", "/_synapse/admin/v1/users/{target}/shadow_ban", None),
        (
            "POST",
            "/_synapse/admin/v1/users/{target}/override_ratelimit",
            {"messages_per_second": 3},
        ),
        ("GET", "/_synapse/admin/v1/users/{target}/override_ratelimit", None),
        ("DELETE", "/_synapse/admin/v1/users/{target}/override_ratelimit", None),
        ("PUT", "/_synapse/admin/v1/users/{target}/admin", {"admin": True}),
        ("POST", "/_synapse/admin/v1/users/{target}/login", {}),
        ("POST", "/_synapse/admin/v2/users/{target}/devices", {"device_id": "ADMINMADE"}),
        ("PUT", "/_synapse/admin/v2/users/{target}/devices/ADMINMADE", {"display_name": "K"}),
        ("GET", "/_synapse/admin/v2/users/{target}/devices/ADMINMADE", None),
        ("DELETE", "/_synapse/admin/v2/users/{target}/devices/ADMINMADE", None),
        ("POST", "/_synapse/admin/v2/users/{target}/delete_devices", {"devices": ["NONE"]}),
        ("POST", "/_synapse/admin/v1/reset_password/{target}", {"new_password": "pw-other-91"}),
        ("POST", "/_synapse/admin/v1/deactivate/{target}", {"erase": True}),
        ("GET", "/_synapse/admin/v2/users/{target}", None),
    ]
    for method, path, body in steps:
        answers = admin_pair.both(method, user_path(path), body)
        assert answers[0][0] == answers[1][0], (method, path, answers)
        if "/suspend/" in path:
            # {"user_<its user ID>_suspended": bool}: the key names the user.
            for server, (_, answer) in zip(admin_pair.servers, answers, strict=True):
                key = f"user_{server.accounts['target'].user_id}_suspended"
                assert answer == {key: body["suspend"]}, (server.name, answer)
            continue
        assert_same_answer(answers, ignore=("last_seen_user_agent",))


def _bobs_message(server: AdminServer) -> tuple[str, str]:
    """A room of alice's that bob joined and wrote in: (room ID, bob's event ID)."""
    c = "/_matrix/client/v3"
    alice, bob = server.accounts["alice"].access_token, server.accounts["bob"].access_token
    status, room = server.call("POST", f"{c}/createRoom", {"preset": "public_chat"}, alice)
    assert status == 200, room
    room_id = quote(room["room_id"])
    assert server.call("POST", f"{c}/rooms/{room_id}/join", {}, bob)[0] == 200
    status, sent = server.call(
        "PUT", f"{c}/rooms/{room_id}/send/m.room.message/t{secrets.token_hex(4)}",
        {"msgtype": "m.text", "body": "spam"}, bob,
    )  # fmt: skip
    assert status == 200, sent
    return room["room_id"], sent["event_id"]


def test_redaction_job_answers_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    messages = {server.name: _bobs_message(server) for server in admin_pair.servers}
    started = admin_pair.both(
        "POST",
        user_path("/_synapse/admin/v1/user/{bob}/redact"),
        lambda server: {"rooms": [messages[server.name][0]], "reason": "spam"},
    )
    assert_same_answer(started)
    for server, (_, answer) in zip(admin_pair.servers, started, strict=True):
        status_path = f"/_synapse/admin/v1/user/redact_status/{answer['redact_id']}"
        deadline = time.monotonic() + JOB_WAIT_S
        while True:
            status, body = server.as_admin("GET", status_path)
            assert status == 200, body
            if body["status"] == "complete" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert body == {"status": "complete", "failed_redactions": {}}, (server.name, body)
        room_id, event_id = messages[server.name]
        status, event = server.call(
            "GET",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(event_id)}",
            token=server.accounts["alice"].access_token,
        )
        assert status == 200
        assert event["content"] == {}, (server.name, event)


def test_registration_tokens_answer_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    token = f"tok{secrets.token_hex(3)}"
    base = "/_synapse/admin/v1/registration_tokens"
    assert_same_answer(admin_pair.both("POST", f"{base}/new", {"token": token, "uses_allowed": 2}))
    assert_same_answer(admin_pair.both("POST", f"{base}/new", {"token": token}))
    assert_same_answer(admin_pair.both("PUT", f"{base}/{token}", {"uses_allowed": 5}))
    assert_same_answer(admin_pair.both("GET", f"{base}?valid=true"))
    assert_same_answer(admin_pair.both("DELETE", f"{base}/{token}"))
    assert_same_answer(admin_pair.both("GET", f"{base}/{token}"))
