"""Unread notification counts in /sync (Push Notifications, "Receiving notifications",
"Marking notifications as read"; GET /sync ``unread_notifications`` and
``unread_thread_notifications``).

The push rules are evaluated for every local member but the sender when an event is
sent; the counts are the notifications after the user's read receipt (m.read or
m.read.private, whichever is later; threaded or not) or their own latest event.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona, second_device
from tests.push.helpers import (
    THREADED,
    counts,
    counts_now,
    group_room,
    in_thread,
    message,
    put_rule,
    send_receipt,
    set_rule_enabled,
    thread_counts,
)
from tests.rooms.helpers import join, send, set_state
from tests.sync.helpers import joined, sync


def test_a_message_counts_for_every_member_but_its_sender(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    assert counts_now(api, alice, room) == (0, 0)

    send(api, bob, room, "hello")
    send(api, bob, room, "again")

    assert counts_now(api, alice, room) == (2, 0)
    assert counts_now(api, carol, room) == (2, 0)
    # "Homeservers MUST NOT notify the Push Gateway for events that the user has sent
    # themselves": nor do they count.
    assert counts_now(api, bob, room) == (0, 0)


def test_an_incremental_sync_carries_the_count_with_the_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = group_room(api, alice, bob)
    token = sync(api, alice)["next_batch"]

    send(api, bob, room, "hello")

    body = sync(api, alice, since=token, timeout=0)
    assert [e["content"]["body"] for e in joined(body)[room]["timeline"]["events"]] == ["hello"]
    assert counts(body, room) == (1, 0)
    # Nothing new: the room is not in the next response.
    assert room not in joined(sync(api, alice, since=body["next_batch"], timeout=0))


def test_member_events_do_not_count(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob)
    set_state(api, alice, room, "m.room.join_rules", {"join_rule": "public"})
    join(api, carol, room)

    assert counts_now(api, bob, room) == (0, 0)


def test_a_user_mention_highlights(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)

    send(api, bob, room, message("hey", **{"m.mentions": {"user_ids": [alice.user_id]}}))

    assert counts_now(api, alice, room) == (1, 1)
    assert counts_now(api, carol, room) == (1, 0)


def test_a_room_mention_highlights_when_the_sender_may_notify_the_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    everyone = {"m.mentions": {"room": True}}

    # alice created the room; bob has power level 0, below notifications.room (50).
    send(api, bob, room, message("@room from bob", **everyone))
    assert counts_now(api, alice, room) == (1, 0)

    send(api, alice, room, message("@room from alice", **everyone))
    assert counts_now(api, bob, room) == (1, 1)
    assert counts_now(api, carol, room) == (2, 1)


def test_a_display_name_rule_highlights(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    # Her display name before she joins: her member event in the room carries it.
    name = api.put(
        f"profile/{alice.user_id}/displayname",
        {"displayname": "Alice Liddell"},
        token=alice.access_token,
    )
    assert name.status == 200
    room = group_room(api, alice, bob, carol)
    rule = {
        "conditions": [{"kind": "contains_display_name"}],
        "actions": ["notify", {"set_tweak": "highlight"}],
    }
    assert put_rule(api, alice, "override", "display-name", rule).status == 200

    send(api, bob, room, "is alice liddell here?")
    send(api, bob, room, "Alice, are you there?")

    # The whole display name, as words, in any case.
    assert counts_now(api, alice, room) == (2, 1)


def test_edits_and_reactions_do_not_count(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    original = send(api, bob, room, "hello")
    send_receipt(api, alice, room, original)
    assert counts_now(api, alice, room) == (0, 0)

    edit = message(
        "* hello!",
        **{
            "m.new_content": message("hello!"),
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    send(api, bob, room, edit)  # .m.rule.suppress_edits
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}}
    send(api, bob, room, reaction, event_type="m.reaction")  # .m.rule.reaction

    assert counts_now(api, alice, room) == (0, 0)


def test_a_disabled_message_rule_leaves_messages_uncounted(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    set_rule_enabled(api, alice, "underride", ".m.rule.message", False)

    send(api, bob, room, "hello")
    send(api, bob, room, message("hey", **{"m.mentions": {"user_ids": [alice.user_id]}}))

    # The mention still matches its override rule.
    assert counts_now(api, alice, room) == (1, 1)
    assert counts_now(api, carol, room) == (2, 0)


def test_messages_of_an_ignored_user_do_not_count(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    ignored = {"ignored_users": {bob.user_id: {}}}
    response = api.put(
        f"user/{alice.user_id}/account_data/m.ignored_user_list",
        ignored,
        token=alice.access_token,
    )
    assert response.status == 200

    send(api, bob, room, "hello")
    send(api, carol, room, "hi")

    assert counts_now(api, alice, room) == (1, 0)


def test_a_receipt_clears_what_it_covers(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = group_room(api, alice, bob)
    first = send(api, bob, room, "one")
    second = send(api, bob, room, "two")
    third = send(api, bob, room, message("three", **{"m.mentions": {"user_ids": [alice.user_id]}}))

    send_receipt(api, alice, room, first)
    assert counts_now(api, alice, room) == (2, 1)
    # The later of m.read and m.read.private counts.
    send_receipt(api, alice, room, third, "m.read.private")
    assert counts_now(api, alice, room) == (0, 0)
    send_receipt(api, alice, room, second)
    assert counts_now(api, alice, room) == (0, 0)


def test_sending_an_event_reads_the_room_up_to_it(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = group_room(api, alice, bob)
    send(api, bob, room, "one")
    send(api, bob, room, "two")
    assert counts_now(api, alice, room) == (2, 0)

    # "When the user updates their read receipt (either by using the API or by
    # sending an event), notifications prior to and including that event MUST be
    # marked as read."
    send(api, alice, room, "I'm here")
    assert counts_now(api, alice, room) == (0, 0)
    send(api, bob, room, "three")
    assert counts_now(api, alice, room) == (1, 0)


def test_a_private_receipt_on_another_device_brings_the_new_counts(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = group_room(api, alice, bob)
    phone = second_device(api, alice)
    event = send(api, bob, room, "hello")
    body = sync(api, alice)
    assert counts(body, room) == (1, 0)

    send_receipt(api, phone, room, event, "m.read.private")

    later = sync(api, alice, since=body["next_batch"], timeout=0)
    assert counts(later, room) == (0, 0)


def test_counts_move_even_when_receipts_are_filtered_out(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = group_room(api, alice, bob)
    event = send(api, bob, room, "hello")
    no_receipts = {"room": {"ephemeral": {"not_types": ["m.receipt"]}}}
    body = sync(api, alice, filter=no_receipts)
    assert counts(body, room) == (1, 0)

    send_receipt(api, alice, room, event, "m.read.private")

    later = sync(api, alice, since=body["next_batch"], timeout=0, filter=no_receipts)
    assert counts(later, room) == (0, 0)
    assert joined(later)[room]["ephemeral"]["events"] == []


def _thread_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> tuple[str, dict[str, str]]:
    room = group_room(api, alice, bob)
    root = send(api, bob, room, "root")
    events = {
        "root": root,
        "reply": send(api, bob, room, in_thread(root)),
        "main": send(api, bob, room, "main timeline"),
    }
    return room, events


def test_thread_counts_are_given_when_the_filter_asks(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room, events = _thread_room(api, alice, bob)
    root = events["root"]

    # Without the filter's flag, one count for the whole room.
    plain = sync(api, alice)
    assert counts(plain, room) == (3, 0)
    assert "unread_thread_notifications" not in joined(plain)[room]

    # With it, the room's counts are the main timeline's (the root is in it).
    threaded = sync(api, alice, filter=THREADED)
    assert counts(threaded, room) == (2, 0)
    assert thread_counts(threaded, room) == {root: (1, 0)}


def test_a_reply_to_a_threaded_event_is_in_the_thread(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room, events = _thread_room(api, alice, bob)
    reply = message("re", **{"m.relates_to": {"m.in_reply_to": {"event_id": events["reply"]}}})
    send(api, bob, room, reply)

    threaded = sync(api, alice, filter=THREADED)
    assert thread_counts(threaded, room) == {events["root"]: (2, 0)}


def test_threaded_receipts_clear_their_thread_and_unthreaded_ones_everything(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room, events = _thread_room(api, alice, bob)
    root = events["root"]

    # A receipt in the thread reads the thread only.
    send_receipt(api, alice, room, events["reply"], thread_id=root)
    threaded = sync(api, alice, filter=THREADED)
    assert counts(threaded, room) == (2, 0)
    assert thread_counts(threaded, room) == {}
    assert counts_now(api, alice, room) == (2, 0)

    # A receipt in the main timeline reads the main timeline only.
    later = send(api, bob, room, in_thread(root, "later in thread"))
    send_receipt(api, alice, room, events["main"], "m.read.private", thread_id="main")
    threaded = sync(api, alice, filter=THREADED)
    assert counts(threaded, room) == (0, 0)
    assert thread_counts(threaded, room) == {root: (1, 0)}

    # An unthreaded receipt reads every thread up to its event.
    send_receipt(api, alice, room, later)
    threaded = sync(api, alice, filter=THREADED)
    assert counts(threaded, room) == (0, 0)
    assert thread_counts(threaded, room) == {}


def test_an_unthreaded_receipt_reads_only_up_to_its_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room, events = _thread_room(api, alice, bob)
    send_receipt(api, alice, room, events["reply"])
    send(api, bob, room, in_thread(events["root"], "after the receipt"))

    threaded = sync(api, alice, filter=THREADED)
    assert counts(threaded, room) == (1, 0)
    assert thread_counts(threaded, room) == {events["root"]: (1, 0)}


def test_state_events_follow_the_rules(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    # No predefined rule notifies of a topic change (.m.rule.message is for messages).
    set_state(api, alice, room, "m.room.topic", {"topic": "tea"})
    assert counts_now(api, bob, room) == (0, 0)
    # A tombstone is an override rule that notifies and highlights.
    body: dict[str, Any] = {"body": "moved", "replacement_room": "!new:example.org"}
    set_state(api, alice, room, "m.room.tombstone", body)
    assert counts_now(api, bob, room) == (1, 1)


def test_the_counts_of_every_room_take_one_query(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rooms = [group_room(api, alice, bob) for _ in range(4)]
    token = sync(api, alice)["next_batch"]
    for n, room in enumerate(rooms):
        for _ in range(n + 1):
            send(api, bob, room, "hello")

    with CaptureQueriesContext(connection) as queries:
        body = sync(api, alice, since=token, timeout=0)

    assert [counts(body, room) for room in rooms] == [(1, 0), (2, 0), (3, 0), (4, 0)]
    reads = [q["sql"] for q in queries.captured_queries if "push_pushaction" in q["sql"]]
    assert len(reads) == 1, reads
