"""Receipts (Client-Server API, "Receipts").

POST /receipt/{receiptType}/{eventId} moves a joined member's m.read or m.read.private
receipt (per thread, if given) forwards; m.fully_read sets the fully read marker. /sync
carries an m.receipt event per room and thread with the receipts that moved since the
token; private receipts reach only their owner.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.tokens import SyncToken
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, leave, send
from tests.sync.ephemeral_helpers import ephemeral, send_receipt, shared_room, sync


def receipts(body: dict[str, Any], room: str) -> list[dict[str, Any]]:
    """The contents of the room's m.receipt events in a sync body."""
    return [e["content"] for e in ephemeral(body, room, "m.receipt")]


def room_account_data(body: dict[str, Any], room: str) -> dict[str, Any]:
    room_body = body.get("rooms", {}).get("join", {}).get(room, {})
    return {e["type"]: e["content"] for e in room_body.get("account_data", {}).get("events", [])}


def thread_reply(api: MatrixTestClient, who: Persona, room: str, root: str) -> str:
    content = {
        "msgtype": "m.text",
        "body": "in thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }
    return send(api, who, room, content)


def test_read_receipt_reaches_the_room_in_the_next_sync(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event = send(api, alice, room)
    token = sync(api, bob)["next_batch"]

    assert send_receipt(api, alice, room, event).status == 200

    body = sync(api, bob, token)
    [content] = receipts(body, room)
    assert list(content) == [event]
    assert list(content[event]) == ["m.read"]
    receipt = content[event]["m.read"][alice.user_id]
    assert isinstance(receipt["ts"], int)
    assert "thread_id" not in receipt
    # Delivered once: nothing new in the next sync.
    assert receipts(sync(api, bob, body["next_batch"]), room) == []


def test_initial_sync_gives_the_current_receipts(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    first = send(api, alice, room)
    second = send(api, alice, room)
    send_receipt(api, bob, room, first)
    send_receipt(api, bob, room, second)

    [content] = receipts(sync(api, alice), room)

    assert content == {second: {"m.read": {bob.user_id: content[second]["m.read"][bob.user_id]}}}


def test_private_receipts_reach_only_their_owner(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event = send(api, alice, room)
    alice_token = sync(api, alice)["next_batch"]
    bob_token = sync(api, bob)["next_batch"]

    assert send_receipt(api, bob, room, event, "m.read.private").status == 200

    [content] = receipts(sync(api, bob, bob_token), room)
    assert list(content[event]) == ["m.read.private"]
    assert receipts(sync(api, alice, alice_token), room) == []
    assert receipts(sync(api, alice), room) == []


def test_receipts_only_move_forwards(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = shared_room(api, alice, bob)
    older = send(api, alice, room)
    newer = send(api, alice, room)
    send_receipt(api, bob, room, newer)
    token = sync(api, alice)["next_batch"]

    # Accepted, but an older event does not move the receipt back (as in Synapse).
    assert send_receipt(api, bob, room, older).status == 200

    body = sync(api, alice, token)
    assert receipts(body, room) == []
    assert SyncToken.parse(body["next_batch"]).receipts == SyncToken.parse(token).receipts
    assert list(receipts(sync(api, alice), room)[0]) == [newer]


def test_public_and_private_receipts_are_independent(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    older = send(api, alice, room)
    newer = send(api, alice, room)
    send_receipt(api, bob, room, newer, "m.read.private")

    # "It is considered valid to have an m.read receipt lag behind m.read.private."
    assert send_receipt(api, bob, room, older).status == 200

    contents = receipts(sync(api, bob), room)
    merged = {event: types for content in contents for event, types in content.items()}
    assert set(merged[older]) == {"m.read"}
    assert set(merged[newer]) == {"m.read.private"}


def test_threaded_receipts_are_kept_apart_from_unthreaded_ones(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    root = send(api, alice, room)
    reply = thread_reply(api, alice, room, root)
    main = send(api, alice, room)
    token = sync(api, alice)["next_batch"]

    assert send_receipt(api, bob, room, reply, thread_id=root).status == 200
    assert send_receipt(api, bob, room, main, thread_id="main").status == 200
    assert send_receipt(api, bob, room, main).status == 200

    contents = receipts(sync(api, alice, token), room)
    found = {
        (event, receipt.get("thread_id"))
        for content in contents
        for event, types in content.items()
        for receipt in types["m.read"].values()
    }
    assert found == {(reply, root), (main, "main"), (main, None)}


@pytest.mark.parametrize("thread_id", ["", 5, "elsewhere"])
def test_malformed_thread_ids_are_refused(
    api: MatrixTestClient, alice: Persona, thread_id: Any
) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)

    response = send_receipt(api, alice, room, event, thread_id=thread_id)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_a_receipt_outside_its_thread_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    root = send(api, alice, room)
    reply = thread_reply(api, alice, room, root)
    other = send(api, alice, room)

    assert send_receipt(api, alice, room, reply, thread_id="main").status == 400
    assert send_receipt(api, alice, room, other, thread_id=root).status == 400
    # The root is in the main timeline, and where its thread starts.
    assert send_receipt(api, alice, room, root, thread_id="main").status == 200
    assert send_receipt(api, alice, room, root, thread_id=root).status == 200


def test_unknown_receipt_type_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)

    response = send_receipt(api, alice, room, event, "m.seen")

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_unknown_event_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    elsewhere = send(api, alice, create_room(api, alice))

    for event in ("$nonexistent", elsewhere):
        response = send_receipt(api, alice, room, event)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_non_members_cannot_send_receipts(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)

    response = send_receipt(api, bob, room, event)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_former_members_cannot_send_receipts(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event = send(api, alice, room)
    leave(api, bob, room)

    assert send_receipt(api, bob, room, event).status == 403


def test_fully_read_receipt_sets_the_marker_not_a_receipt(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event = send(api, alice, room)
    token = sync(api, bob)["next_batch"]

    assert send_receipt(api, bob, room, event, "m.fully_read").status == 200

    body = sync(api, bob, token)
    assert room_account_data(body, room)["m.fully_read"] == {"event_id": event}
    assert receipts(body, room) == []


def test_fully_read_takes_no_thread_id(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)

    response = send_receipt(api, alice, room, event, "m.fully_read", thread_id="main")

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_receipts_wake_the_room_and_private_ones_their_owner(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = shared_room(api, alice, bob)
    first = send(api, alice, room)
    second = send(api, alice, room)
    woken: list[tuple[str, str | None, list[str] | None]] = []
    monkeypatch.setattr(
        "streams.notifier.notify_stream_moved",
        lambda stream, position, room_id=None, user_ids=None: woken.append(
            (stream, room_id, user_ids)
        ),
    )

    with django_capture_on_commit_callbacks(execute=True):
        send_receipt(api, bob, room, first)
        send_receipt(api, bob, room, second, "m.read.private")

    assert woken == [("receipts", room, None), ("receipts", None, [bob.user_id])]


def test_receipts_take_one_query_for_all_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rooms = [shared_room(api, alice, bob) for _ in range(4)]
    token = sync(api, alice)["next_batch"]
    for room in rooms:
        send_receipt(api, bob, room, send(api, alice, room))

    with CaptureQueriesContext(connection) as queries:
        body = sync(api, alice, token)

    assert all(len(receipts(body, room)) == 1 for room in rooms)
    # (The unread counts read receipts too, in their own one query: tests/push.)
    reads = [q["sql"] for q in queries.captured_queries if "rooms_receipt" in q["sql"]]
    assert len([sql for sql in reads if "push_pushaction" not in sql]) == 1
