"""PUT /rooms/{roomId}/send/{eventType}/{txnId} (Client-Server API, "Sending events to
a room", "Transaction identifiers", "Size limits")."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from rooms.models import Event
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import (
    bodies,
    create_room,
    invite,
    join,
    leave,
    messages,
    room_path,
    send,
    set_state,
    state_map,
)


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    return room


def get_event(api: MatrixTestClient, token: str, room: str, event_id: str) -> dict[str, Any]:
    response = api.get(room_path(room, "event", event_id), token=token)
    assert response.status == 200, response.body
    return response.body


def test_a_sent_message_is_in_the_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    event_id = send(api, alice, room, {"msgtype": "m.text", "body": "hello", "n": 3})

    event = get_event(api, bob.access_token, room, event_id)
    assert event["type"] == "m.room.message"
    assert event["sender"] == alice.user_id
    assert event["content"] == {"msgtype": "m.text", "body": "hello", "n": 3}
    assert event["room_id"] == room
    assert "state_key" not in event
    assert messages(api, bob, room, limit=1).body["chunk"][0]["event_id"] == event_id


def test_any_event_type_can_be_sent(api: MatrixTestClient, alice: Persona, room: str) -> None:
    event_id = send(api, alice, room, {"x": 1}, event_type="org.example.custom")

    assert get_event(api, alice.access_token, room, event_id)["type"] == "org.example.custom"


# -- transaction IDs -------------------------------------------------------------------


def test_a_retried_transaction_returns_the_same_event_and_persists_once(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    first = send(api, alice, room, "once", txn_id="m1")
    retry = send(api, alice, room, "once", txn_id="m1")

    assert retry == first
    assert Event.objects.filter(txn_id="m1").count() == 1
    assert bodies(messages(api, alice, room).body["chunk"]) == ["once"]


def test_a_retry_with_different_content_still_returns_the_first_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    first = send(api, alice, room, "original", txn_id="m1")

    retry = send(api, alice, room, "changed my mind", txn_id="m1")

    assert retry == first
    assert get_event(api, alice.access_token, room, first)["content"]["body"] == "original"


def test_the_same_transaction_id_from_another_device_is_a_new_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    other_device = api.login("alice", alice.password).body["access_token"]

    first = send(api, alice, room, "from laptop", txn_id="m1")
    second = send(api, alice, room, "from phone", txn_id="m1", token=other_device)

    assert first != second
    assert Event.objects.filter(txn_id="m1").count() == 2


def test_the_same_transaction_id_from_another_user_is_a_new_event(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    first = send(api, alice, room, "alice", txn_id="m1")
    second = send(api, bob, room, "bob", txn_id="m1")

    assert first != second


def test_the_same_transaction_id_in_another_room_is_a_new_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    other_room = create_room(api, alice)

    first = send(api, alice, room, "here", txn_id="m1")
    second = send(api, alice, other_room, "there", txn_id="m1")

    assert first != second
    assert get_event(api, alice.access_token, other_room, second)["content"]["body"] == "there"


def test_the_same_transaction_id_for_another_event_type_is_a_new_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    first = send(api, alice, room, "message", txn_id="m1")
    second = send(api, alice, room, {"x": 1}, txn_id="m1", event_type="org.example.custom")

    assert first != second


def test_transaction_id_is_in_unsigned_only_for_the_sending_device(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    other_device = api.login("alice", alice.password).body["access_token"]

    event_id = send(api, alice, room, "hello", txn_id="my-txn")

    mine = get_event(api, alice.access_token, room, event_id)
    assert mine["unsigned"]["transaction_id"] == "my-txn"
    assert "transaction_id" not in get_event(api, other_device, room, event_id)["unsigned"]
    assert "transaction_id" not in get_event(api, bob.access_token, room, event_id)["unsigned"]
    in_messages = messages(api, alice, room, limit=1).body["chunk"][0]
    assert in_messages["unsigned"]["transaction_id"] == "my-txn"
    bobs_view = messages(api, bob, room, limit=1).body["chunk"][0]
    assert "transaction_id" not in bobs_view["unsigned"]


# -- who may send ----------------------------------------------------------------------


def test_a_non_member_cannot_send(
    api: MatrixTestClient, alice: Persona, carol: Persona, room: str
) -> None:
    send(api, carol, room, "let me in", expect=403)

    assert not Event.objects.filter(sender=carol.user_id).exists()


def test_an_invited_user_cannot_send_before_joining(
    api: MatrixTestClient, alice: Persona, carol: Persona, room: str
) -> None:
    invite(api, alice, room, carol)

    send(api, carol, room, "too early", expect=403)


def test_a_user_who_left_cannot_send(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    leave(api, bob, room)

    send(api, bob, room, "after leaving", expect=403)


def test_a_refusal_is_m_forbidden(api: MatrixTestClient, carol: Persona, room: str) -> None:
    response = api.put(
        room_path(room, "send", "m.room.message", "t"), {"body": "x"}, token=carol.access_token
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_sending_needs_the_events_level(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    set_state(
        api, alice, room, "m.room.power_levels", {**levels, "events": {"org.example.loud": 50}}
    )

    send(api, bob, room, {}, event_type="org.example.loud", expect=403)
    send(api, bob, room, "ordinary messages are still fine")
    send(api, alice, room, {}, event_type="org.example.loud")


def test_sending_to_an_unknown_room_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(
        room_path(f"!nowhere:{settings.SERVER_NAME}", "send", "m.room.message", "t"),
        {"body": "x"},
        token=alice.access_token,
    )

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_sending_needs_an_access_token(api: MatrixTestClient, room: str) -> None:
    response = api.put(room_path(room, "send", "m.room.message", "t"), {"body": "x"})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


# -- the body --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [(b"{", "M_NOT_JSON"), (b"[1]", "M_BAD_JSON"), (b"null", "M_BAD_JSON")],
)
def test_the_content_must_be_a_json_object(
    api: MatrixTestClient, alice: Persona, room: str, raw: bytes, errcode: str
) -> None:
    response = api.request(
        "PUT", room_path(room, "send", "m.room.message", "t"), raw=raw, token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == errcode


def test_content_over_65536_bytes_is_too_large(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    before = Event.objects.count()

    response = api.put(
        room_path(room, "send", "m.room.message", "big"),
        {"msgtype": "m.text", "body": "x" * 65536},
        token=alice.access_token,
    )

    assert response.status == 413
    assert response.errcode == "M_TOO_LARGE"
    assert Event.objects.count() == before


def test_an_event_over_65536_bytes_with_its_envelope_is_too_large(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    # The content alone fits; with the PDU's other fields it does not.
    response = api.put(
        room_path(room, "send", "m.room.message", "big"),
        {"body": "x" * 65400},
        token=alice.access_token,
    )

    assert response.status == 413
    assert response.errcode == "M_TOO_LARGE"


def test_a_large_event_under_the_limit_is_fine(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    event_id = send(api, alice, room, {"body": "x" * 60000})

    assert len(get_event(api, alice.access_token, room, event_id)["content"]["body"]) == 60000


@pytest.mark.parametrize("version", ["6", "10", "11", "12"])
@pytest.mark.parametrize(
    "content",
    [{"body": "pi", "value": 3.14}, {"body": "big", "value": 2**53}, {"nested": [{"f": 1.0}]}],
    ids=["float", "int-too-big", "nested-float"],
)
def test_non_canonical_json_values_are_refused_from_room_version_6(
    api: MatrixTestClient, alice: Persona, version: str, content: dict[str, Any]
) -> None:
    room = create_room(api, alice, room_version=version)

    response = api.put(
        room_path(room, "send", "m.room.message", "t"), content, token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"


@pytest.mark.parametrize("version", ["1", "5"])
def test_floats_are_accepted_before_room_version_6(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    room = create_room(api, alice, room_version=version)

    event_id = send(api, alice, room, {"body": "pi", "value": 3.5})

    assert get_event(api, alice.access_token, room, event_id)["content"]["value"] == 3.5


# -- the hot path ----------------------------------------------------------------------


def test_a_send_takes_a_bounded_number_of_queries(
    api: MatrixTestClient,
    alice: Persona,
    room: str,
    django_assert_max_num_queries: Any,
) -> None:
    for n in range(5):
        send(api, alice, room, f"warm-up {n}")
    path = room_path(room, "send", "m.room.message", "pinned")

    # Token lookup, savepoint, room lock, txn check, extremities, stream position, event,
    # prev and auth edges, the body's search index row, extremity move, release, and
    # push's four (the sender's implicit receipt, the recipients' ignore lists, push rules
    # changed since last read, one insert of their push actions): nothing grows with the
    # room (tests/push/test_send_path.py compares room sizes).
    with django_assert_max_num_queries(17):
        response = api.put(path, {"msgtype": "m.text", "body": "hi"}, token=alice.access_token)

    assert response.status == 200


def test_a_retried_send_takes_fewer_queries(
    api: MatrixTestClient,
    alice: Persona,
    room: str,
    django_assert_max_num_queries: Any,
) -> None:
    path = room_path(room, "send", "m.room.message", "retried")
    api.put(path, {"body": "hi"}, token=alice.access_token)

    with django_assert_max_num_queries(5):
        response = api.put(path, {"body": "hi"}, token=alice.access_token)

    assert response.status == 200
