"""The Synapse admin API for the server: server notices and federation destinations."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.clock import now_ms
from federation.models import Destination
from operators.models import AuditEntry
from rooms.models import Membership, Room
from tests.conftest import MatrixTestClient, Persona
from tests.operators.conftest import ADMIN_V1, q
from tests.rooms.helpers import create_room, join, room_path

NOTICE = {"msgtype": "m.text", "body": "Maintenance tonight"}


def notice(
    api: MatrixTestClient, who: Persona, body: dict[str, Any], txn_id: str | None = None
) -> Any:
    if txn_id is None:
        return api.post(f"{ADMIN_V1}/send_server_notice", body, token=who.access_token)
    return api.put(f"{ADMIN_V1}/send_server_notice/{txn_id}", body, token=who.access_token)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/send_server_notice"),
        ("PUT", "/send_server_notice/t1"),
        ("GET", "/federation/destinations"),
        ("GET", "/federation/destinations/elsewhere.example"),
        ("GET", "/federation/destinations/elsewhere.example/rooms"),
        ("POST", "/federation/destinations/elsewhere.example/reset_connection"),
    ],
)
def test_server_endpoints_are_for_server_admins_only(
    api: MatrixTestClient, alice: Persona, bob: Persona, method: str, path: str
) -> None:
    Destination.objects.create(server_name="elsewhere.example", failures=2, retry_at_ts=1)
    body = {"user_id": bob.user_id, "content": NOTICE}

    response = api.request(method, ADMIN_V1 + path, body, token=alice.access_token)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert not Room.objects.exists()
    assert Destination.objects.get().failures == 2


# --- server notices ---------------------------------------------------------------------


def test_a_server_notice_arrives_in_a_tagged_room_the_user_cannot_speak_in(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    response = notice(api, admin, {"user_id": alice.user_id, "content": NOTICE})

    assert response.status == 200, response.body
    event_id = response.body["event_id"]
    (room,) = Room.objects.filter(creator="@notices:localhost:8008")
    invite = Membership.objects.get(room=room, user_id=alice.user_id)
    assert invite.membership == "invite"
    tags = api.get(
        f"user/{q(alice.user_id)}/rooms/{q(room.room_id)}/tags", token=alice.access_token
    )
    assert tags.body == {"tags": {"m.server_notice": {}}}
    join(api, alice, room.room_id)
    event = api.get(room_path(room.room_id, "event", event_id), token=alice.access_token)
    assert event.body["content"] == NOTICE
    assert event.body["sender"] == "@notices:localhost:8008"
    reply = api.put(
        room_path(room.room_id, "send", "m.room.message", "r1"),
        {"msgtype": "m.text", "body": "ok"},
        token=alice.access_token,
    )
    assert reply.status == 403
    assert AuditEntry.objects.filter(action="server_notice.send", target=alice.user_id).exists()


def test_the_invite_to_the_notices_room_cannot_be_rejected_but_the_room_can_be_left(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    notice(api, admin, {"user_id": alice.user_id, "content": NOTICE})
    room_id = Room.objects.get(creator="@notices:localhost:8008").room_id

    rejected = api.post(room_path(room_id, "leave"), token=alice.access_token)

    assert (rejected.status, rejected.errcode) == (403, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")
    assert Membership.objects.get(room__room_id=room_id, user_id=alice.user_id).membership == (
        "invite"
    )
    join(api, alice, room_id)
    assert api.post(room_path(room_id, "leave"), token=alice.access_token).status == 200


def test_later_notices_use_the_same_room_until_the_user_leaves_it(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    notice(api, admin, {"user_id": alice.user_id, "content": NOTICE})
    notice(api, admin, {"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "2"}})
    assert Room.objects.filter(creator="@notices:localhost:8008").count() == 1
    room_id = Room.objects.get(creator="@notices:localhost:8008").room_id
    join(api, alice, room_id)
    api.post(room_path(room_id, "leave"), token=alice.access_token)

    notice(api, admin, {"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "3"}})

    assert Room.objects.filter(creator="@notices:localhost:8008").count() == 2


def test_a_retransmitted_notice_is_sent_once(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    body = {"user_id": alice.user_id, "content": NOTICE}

    first = notice(api, admin, body, txn_id="txn1")
    again = notice(api, admin, body, txn_id="txn1")
    other = notice(api, admin, body, txn_id="txn2")

    assert first.status == 200
    assert again.body == first.body
    assert other.body != first.body


def test_the_notices_user_is_a_setting(
    api: MatrixTestClient, admin: Persona, alice: Persona, settings: Any
) -> None:
    settings.SERVER_NOTICES_LOCALPART = "system"

    notice(api, admin, {"user_id": alice.user_id, "content": NOTICE})

    assert Room.objects.get().creator == "@system:localhost:8008"


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({"content": NOTICE}, 400, "M_MISSING_PARAM"),
        ({"user_id": "@alice:localhost:8008"}, 400, "M_MISSING_PARAM"),
        ({"user_id": "@alice:localhost:8008", "content": "text"}, 400, "M_BAD_JSON"),
        ({"user_id": "@x:elsewhere.example", "content": NOTICE}, 400, "M_INVALID_PARAM"),
        ({"user_id": "@ghost:localhost:8008", "content": NOTICE}, 404, "M_NOT_FOUND"),
    ],
)
def test_bad_notices_are_refused_and_make_no_room(
    api: MatrixTestClient,
    admin: Persona,
    alice: Persona,
    body: dict[str, Any],
    status: int,
    errcode: str,
) -> None:
    response = notice(api, admin, body)

    assert (response.status, response.errcode) == (status, errcode)
    assert not Room.objects.exists()


# --- federation destinations ------------------------------------------------------------


@pytest.fixture
def destinations(db: None) -> list[Destination]:
    now = now_ms()
    return [
        Destination.objects.create(server_name="b.example", last_success_ts=now),
        Destination.objects.create(
            server_name="a.example",
            failures=3,
            failing_since_ts=now - 60_000,
            retry_delay_ms=40_000,
            retry_at_ts=now + 10_000,
            last_error="connection refused",
        ),
    ]


def test_destinations_list_pages_and_orders(
    api: MatrixTestClient, admin: Persona, destinations: list[Destination]
) -> None:
    failing = destinations[1]
    assert failing.retry_at_ts is not None

    body = api.get(f"{ADMIN_V1}/federation/destinations", token=admin.access_token).body
    page = api.get(
        f"{ADMIN_V1}/federation/destinations?limit=1&order_by=retry_interval&dir=b",
        token=admin.access_token,
    ).body

    assert body == {
        "destinations": [
            {
                "destination": "a.example",
                "retry_last_ts": failing.retry_at_ts - 40_000,
                "retry_interval": 40_000,
                "failure_ts": failing.failing_since_ts,
                "last_successful_stream_ordering": None,
            },
            {
                "destination": "b.example",
                "retry_last_ts": 0,
                "retry_interval": 0,
                "failure_ts": None,
                "last_successful_stream_ordering": None,
            },
        ],
        "total": 2,
    }
    assert [d["destination"] for d in page["destinations"]] == ["a.example"]
    assert page["next_token"] == "1"


def test_one_destination_and_its_rooms(
    api: MatrixTestClient, admin: Persona, alice: Persona, destinations: list[Destination]
) -> None:
    room = create_room(api, alice)
    Membership.objects.create(
        room=Room.objects.get(room_id=room),
        user_id="@carol:b.example",
        membership="join",
        event_id="$fake",
        stream_ordering=1,
    )

    one = api.get(f"{ADMIN_V1}/federation/destinations/b.example", token=admin.access_token)
    rooms = api.get(
        f"{ADMIN_V1}/federation/destinations/b.example/rooms", token=admin.access_token
    )
    none = api.get(f"{ADMIN_V1}/federation/destinations/a.example/rooms", token=admin.access_token)

    assert one.body["destination"] == "b.example"
    assert rooms.body["total"] == 1
    assert rooms.body["rooms"][0]["room_id"] == room
    assert isinstance(rooms.body["rooms"][0]["stream_ordering"], int)
    assert none.body == {"rooms": [], "total": 0}
    # The fake member is not a real join: out of the room again before the graph check.
    Membership.objects.filter(user_id="@carol:b.example").delete()


def test_reset_connection_ends_the_backoff_and_sends(
    api: MatrixTestClient,
    admin: Persona,
    destinations: list[Destination],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(
            f"{ADMIN_V1}/federation/destinations/a.example/reset_connection",
            {},
            token=admin.access_token,
        )

    assert response.status == 200
    assert callbacks, "a run is queued for the destination"
    failing = Destination.objects.get(server_name="a.example")
    assert (failing.failures, failing.retry_at_ts, failing.retry_delay_ms) == (0, None, 0)
    assert AuditEntry.objects.filter(action="destination.reset", target="a.example").exists()
    healthy = api.post(
        f"{ADMIN_V1}/federation/destinations/b.example/reset_connection",
        {},
        token=admin.access_token,
    )
    assert (healthy.status, healthy.errcode) == (400, "M_INVALID_PARAM")


def test_unknown_destinations_are_404_and_bad_parameters_400(
    api: MatrixTestClient, admin: Persona, destinations: list[Destination]
) -> None:
    for method, path in [
        ("GET", "/federation/destinations/nowhere.example"),
        ("GET", "/federation/destinations/nowhere.example/rooms"),
        ("POST", "/federation/destinations/nowhere.example/reset_connection"),
    ]:
        response = api.request(method, ADMIN_V1 + path, {}, token=admin.access_token)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND"), path
    for query in ["order_by=name", "from=x", "dir=up"]:
        response = api.get(f"{ADMIN_V1}/federation/destinations?{query}", token=admin.access_token)
        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), query
