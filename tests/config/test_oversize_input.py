"""Over-long identifiers and strings are refused where they enter, on every database.

The spec bounds user, room and event IDs, room aliases, event types and state keys at
255 bytes (appendices, "Identifier Grammar"; Client-Server API, "Size limits"), and
transaction IDs, device IDs, tags and the like are kept in 255-character columns. On
PostgreSQL a longer value used to fail the insert (500); on SQLite it was stored whole.
Each case below sends one over-long value to one endpoint and checks the Matrix error,
that no table gained or lost a row, and that the value is stored nowhere.

Path parameters answer 400 M_INVALID_PARAM (config.matrix_api.MatrixView), except a
profile key, which profile.yaml makes M_KEY_TOO_LARGE; identifiers in a JSON body answer
M_INVALID_PARAM where they name something (a user, a room, a device) and M_BAD_JSON where
they are part of a structure the server reads (initial_state, m.relates_to).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from django.apps import apps
from django.conf import settings

from tests.conftest import MatrixTestClient, Persona
from tests.keybackup.helpers import create_version, key
from tests.rooms.helpers import create_room, send

# A value is recognised in the database by this prefix; every case makes it longer than
# its limit.
MARKER = "oversize"


def long_text(size: int = 300) -> str:
    return MARKER + "x" * (size - len(MARKER))


def long_user_id() -> str:
    return f"@{long_text()}:{settings.SERVER_NAME}"


def long_room_id() -> str:
    return f"!{long_text()}:{settings.SERVER_NAME}"


def long_event_id() -> str:
    return f"${long_text()}"


def long_alias() -> str:
    return f"#{long_text()}:{settings.SERVER_NAME}"


@dataclass
class Setup:
    alice: Persona
    room_id: str
    event_id: str
    backup_version: str

    def room(self, *parts: str) -> str:
        return "/".join(["rooms", q(self.room_id), *parts])

    def user(self, *parts: str) -> str:
        return "/".join(["user", q(self.alice.user_id), *parts])


def q(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True)
class Case:
    method: str
    # The path under /_matrix/client/v3 (or a full path), from the setup.
    path: Callable[[Setup], str]
    body: Callable[[Setup], Any] | None = None
    errcode: str = "M_INVALID_PARAM"
    status: int = 400


def relates_to(**fields: Any) -> Callable[[Setup], Any]:
    return lambda s: {"msgtype": "m.text", "body": "hi", "m.relates_to": fields}


CASES: dict[str, Case] = {
    # Sending events: type, state key, transaction ID, relation fields.
    "send: event type": Case("PUT", lambda s: s.room("send", long_text(), "t1"), lambda s: {}),
    "send: transaction ID": Case(
        "PUT", lambda s: s.room("send", "m.room.message", long_text()), lambda s: {}
    ),
    "send: 10,000-character transaction ID": Case(
        "PUT", lambda s: s.room("send", "m.room.message", long_text(10_000)), lambda s: {}
    ),
    "send: room ID": Case(
        "PUT", lambda s: f"rooms/{q(long_room_id())}/send/m.room.message/t1", lambda s: {}
    ),
    "send: m.relates_to.event_id of 10,000 characters": Case(
        "PUT",
        lambda s: s.room("send", "m.room.message", "t1"),
        relates_to(rel_type="m.thread", event_id="$" + long_text(10_000)),
        errcode="M_BAD_JSON",
    ),
    "send: rel_type": Case(
        "PUT",
        lambda s: s.room("send", "m.room.message", "t1"),
        lambda s: relates_to(rel_type=long_text(), event_id=s.event_id)(s),
        errcode="M_BAD_JSON",
    ),
    "send: m.in_reply_to.event_id": Case(
        "PUT",
        lambda s: s.room("send", "m.room.message", "t1"),
        relates_to(**{"m.in_reply_to": {"event_id": long_event_id()}}),
        errcode="M_BAD_JSON",
    ),
    "state: event type": Case("PUT", lambda s: s.room("state", long_text(), ""), lambda s: {}),
    "state: state key": Case(
        "PUT", lambda s: s.room("state", "org.example.state", long_text()), lambda s: {}
    ),
    "state: relation in a state event": Case(
        "PUT",
        lambda s: s.room("state", "org.example.state", "k"),
        relates_to(rel_type="m.reference", event_id=long_event_id()),
        errcode="M_BAD_JSON",
    ),
    "redact: event ID": Case(
        "PUT", lambda s: s.room("redact", q(long_event_id()), "t1"), lambda s: {}
    ),
    "redact: transaction ID": Case(
        "PUT", lambda s: s.room("redact", q(s.event_id), long_text()), lambda s: {}
    ),
    # Rooms: creation, membership, aliases, receipts, reports.
    "createRoom: initial_state type": Case(
        "POST",
        lambda s: "createRoom",
        lambda s: {"initial_state": [{"type": long_text(), "state_key": "", "content": {}}]},
        errcode="M_BAD_JSON",
    ),
    "createRoom: initial_state state_key": Case(
        "POST",
        lambda s: "createRoom",
        lambda s: {"initial_state": [{"type": "org.example", "state_key": long_text()}]},
        errcode="M_BAD_JSON",
    ),
    "createRoom: room_alias_name": Case(
        "POST", lambda s: "createRoom", lambda s: {"room_alias_name": long_text(250)}
    ),
    "createRoom: invitee": Case(
        "POST", lambda s: "createRoom", lambda s: {"invite": [long_user_id()]}
    ),
    "join: room alias": Case("POST", lambda s: f"join/{q(long_alias())}", lambda s: {}),
    "invite: user ID": Case(
        "POST", lambda s: s.room("invite"), lambda s: {"user_id": long_user_id()}
    ),
    "alias: the alias": Case(
        "PUT", lambda s: f"directory/room/{q(long_alias())}", lambda s: {"room_id": s.room_id}
    ),
    "alias: the room ID": Case(
        "PUT",
        lambda s: f"directory/room/{q('#short:' + settings.SERVER_NAME)}",
        lambda s: {"room_id": long_room_id()},
    ),
    "directory visibility: room ID": Case(
        "PUT",
        lambda s: f"directory/list/room/{q(long_room_id())}",
        lambda s: {"visibility": "public"},
    ),
    "receipt: event ID": Case(
        "POST", lambda s: s.room("receipt", "m.read", q(long_event_id())), lambda s: {}
    ),
    "receipt: thread ID": Case(
        "POST",
        lambda s: s.room("receipt", "m.read", q(s.event_id)),
        lambda s: {"thread_id": long_event_id()},
    ),
    "read markers: event ID": Case(
        "POST", lambda s: s.room("read_markers"), lambda s: {"m.fully_read": long_event_id()}
    ),
    "typing: user ID": Case(
        "PUT", lambda s: s.room("typing", q(long_user_id())), lambda s: {"typing": True}
    ),
    "report: event ID": Case(
        "POST", lambda s: s.room("report", q(long_event_id())), lambda s: {"reason": "spam"}
    ),
    "report: reason over 750 bytes": Case(
        "POST", lambda s: s.room("report", q(s.event_id)), lambda s: {"reason": long_text(751)}
    ),
    "report a room: reason over 750 bytes": Case(
        "POST", lambda s: s.room("report"), lambda s: {"reason": long_text(751)}
    ),
    # Send-to-device.
    "sendToDevice: event type": Case(
        "PUT", lambda s: f"sendToDevice/{long_text()}/t1", lambda s: {"messages": {}}
    ),
    "sendToDevice: transaction ID": Case(
        "PUT", lambda s: f"sendToDevice/m.test/{long_text()}", lambda s: {"messages": {}}
    ),
    "sendToDevice: 10,000-character transaction ID": Case(
        "PUT", lambda s: f"sendToDevice/m.test/{long_text(10_000)}", lambda s: {"messages": {}}
    ),
    "sendToDevice: recipient user ID": Case(
        "PUT",
        lambda s: "sendToDevice/m.test/t1",
        lambda s: {"messages": {long_user_id(): {"*": {}}}},
    ),
    # Account data, tags, filters, profile, presence.
    "account data: type": Case("PUT", lambda s: s.user("account_data", long_text()), lambda s: {}),
    "room account data: type": Case(
        "PUT", lambda s: s.user("rooms", q(s.room_id), "account_data", long_text()), lambda s: {}
    ),
    "room account data: room ID": Case(
        "PUT", lambda s: s.user("rooms", q(long_room_id()), "account_data", "m.x"), lambda s: {}
    ),
    "account data: content over 256 KiB": Case(
        "PUT",
        lambda s: s.user("account_data", "org.example.big"),
        lambda s: {"blob": long_text(256 * 1024)},
        errcode="M_TOO_LARGE",
        status=413,
    ),
    "tag: name": Case(
        "PUT", lambda s: s.user("rooms", q(s.room_id), "tags", long_text()), lambda s: {}
    ),
    "tag: content over 256 KiB": Case(
        "PUT",
        lambda s: s.user("rooms", q(s.room_id), "tags", "u.big"),
        lambda s: {"blob": long_text(256 * 1024)},
        errcode="M_TOO_LARGE",
        status=413,
    ),
    "filter: user ID": Case(
        "POST", lambda s: f"user/{q(long_user_id())}/filter", lambda s: {"room": {}}
    ),
    "profile: key name": Case(
        "PUT",
        lambda s: f"profile/{q(s.alice.user_id)}/{long_text()}",
        lambda s: {long_text(): "x"},
        errcode="M_KEY_TOO_LARGE",
    ),
    "presence: user ID": Case(
        "PUT", lambda s: f"presence/{q(long_user_id())}/status", lambda s: {"presence": "online"}
    ),
    "presence: status_msg over 1 KiB": Case(
        "PUT",
        lambda s: f"presence/{q(s.alice.user_id)}/status",
        lambda s: {"presence": "online", "status_msg": long_text(1025)},
    ),
    # Devices and logins.
    "device: device ID": Case(
        "PUT", lambda s: f"devices/{long_text()}", lambda s: {"display_name": "phone"}
    ),
    "device: display name": Case(
        "PUT", lambda s: f"devices/{s.alice.device_id}", lambda s: {"display_name": long_text(600)}
    ),
    "login: device ID": Case(
        "POST",
        lambda s: "login",
        lambda s: {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": s.alice.password,
            "device_id": long_text(),
        },
    ),
    "login: device display name": Case(
        "POST",
        lambda s: "login",
        lambda s: {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": s.alice.password,
            "initial_device_display_name": long_text(600),
        },
    ),
    # Key backup and media.
    "key backup: version": Case(
        "PUT",
        lambda s: f"room_keys/version/{long_text()}",
        lambda s: {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {}},
    ),
    "key backup: algorithm": Case(
        "POST",
        lambda s: "room_keys/version",
        lambda s: {"algorithm": long_text(), "auth_data": {}},
    ),
    "key backup: room ID": Case(
        "PUT",
        lambda s: f"room_keys/keys/{q(long_room_id())}/session?version={s.backup_version}",
        lambda s: key(),
    ),
    "key backup: session ID": Case(
        "PUT",
        lambda s: f"room_keys/keys/{q(s.room_id)}/{long_text()}?version={s.backup_version}",
        lambda s: key(),
    ),
    "media: media ID": Case(
        "PUT",
        lambda s: f"/_matrix/media/v3/upload/{q(settings.SERVER_NAME)}/{long_text()}",
        lambda s: {},
    ),
}


@pytest.fixture
def setup(api: MatrixTestClient, alice: Persona) -> Setup:
    room_id = create_room(api, alice)
    event_id = send(api, alice, room_id, "the event")
    return Setup(alice, room_id, event_id, create_version(api, alice))


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


def rows_mentioning(text: str) -> list[str]:
    """The models with a row in which ``text`` appears, in any column."""
    return [
        model._meta.label
        for model in apps.get_models()
        if any(text in repr(row) for row in model.objects.values_list())
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_an_oversize_value_is_refused_and_nothing_is_stored(
    api: MatrixTestClient, setup: Setup, case: Case
) -> None:
    body = case.body(setup) if case.body else None
    before = row_counts()

    response = api.request(case.method, case.path(setup), body, token=setup.alice.access_token)

    assert (response.status, response.errcode) == (case.status, case.errcode), response.body
    assert row_counts() == before
    assert rows_mentioning(MARKER) == []


def test_values_at_the_limit_are_accepted(api: MatrixTestClient, setup: Setup) -> None:
    """The limits are 255 bytes inclusive, counted in UTF-8: a 255-byte event type, state
    key and transaction ID are stored, while 256 bytes made of two-byte characters (128
    characters) are not."""
    at_limit = "o" * 255
    response = api.put(setup.room("state", at_limit, at_limit), {}, token=setup.alice.access_token)
    assert response.status == 200, response.body
    response = api.put(
        setup.room("send", "m.room.message", at_limit), {}, token=setup.alice.access_token
    )
    assert response.status == 200, response.body

    two_byte = "é" * 128
    response = api.put(setup.room("state", q(two_byte), ""), {}, token=setup.alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_the_caps_accept_values_at_the_limit(api: MatrixTestClient, setup: Setup) -> None:
    """presence status_msg 1 KiB, a report's reason 750 bytes (counted in UTF-8), an
    account data object 256 KiB of JSON."""
    token = setup.alice.access_token
    status_msg = "é" * 512
    response = api.put(
        f"presence/{q(setup.alice.user_id)}/status",
        {"presence": "online", "status_msg": status_msg},
        token=token,
    )
    assert response.status == 200, response.body
    response = api.get(f"presence/{q(setup.alice.user_id)}/status", token=token)
    assert response.body["status_msg"] == status_msg

    reason = {"reason": "r" * 750}
    response = api.post(setup.room("report", q(setup.event_id)), reason, token=token)
    assert response.status == 200, response.body

    blob = "b" * (256 * 1024 - len('{"blob":""}'))
    response = api.put(setup.user("account_data", "org.example.big"), {"blob": blob}, token=token)
    assert response.status == 200, response.body
    response = api.get(setup.user("account_data", "org.example.big"), token=token)
    assert response.body == {"blob": blob}
