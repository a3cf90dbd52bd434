"""Threads: the m.thread bundled aggregation and GET /threads (Client-Server API, "Threading")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, join, leave, room_path, send, set_state

CLIENT_V1 = "/_matrix/client/v1"


def in_thread(root: str, body: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }


def threads(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> Response:
    query = urlencode(params)
    path = f"{CLIENT_V1}/{room_path(room, 'threads')}" + (f"?{query}" if query else "")
    return api.get(path, token=who.access_token)


def thread_of(api: MatrixTestClient, who: Persona, room: str, root: str) -> dict[str, Any]:
    response = api.get(room_path(room, "event", root), token=who.access_token)
    assert response.status == 200, response.body
    return response.body["unsigned"]["m.relations"]["m.thread"]


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona) -> str:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    join(api, carol, room_id)
    return room_id


def test_a_thread_root_carries_count_latest_event_and_participation(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, room: str
) -> None:
    root = send(api, alice, room, "Hello world! How are you?")
    send(api, bob, room, in_thread(root, "Doing okay"))
    send(api, alice, room, in_thread(root, "Great, thanks"))
    latest = send(api, bob, room, in_thread(root, "Woo! Threads!"))

    for_bob = thread_of(api, bob, room, root)
    for_alice = thread_of(api, alice, room, root)
    for_carol = thread_of(api, carol, room, root)

    assert for_bob["count"] == 3
    assert for_bob["latest_event"]["event_id"] == latest
    assert for_bob["latest_event"]["content"]["body"] == "Woo! Threads!"
    assert for_bob["latest_event"]["room_id"] == room
    # Participation: bob replied, alice sent the root, carol did neither.
    assert for_bob["current_user_participated"] is True
    assert for_alice["current_user_participated"] is True
    assert for_carol["current_user_participated"] is False


def test_the_latest_event_has_its_own_bundled_edit(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    root = send(api, alice, room, "root")
    reply = send(api, bob, room, in_thread(root, "tpyo"))
    fixed = send(
        api,
        bob,
        room,
        {
            "msgtype": "m.text",
            "body": "* typo",
            "m.new_content": {"msgtype": "m.text", "body": "typo"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": reply},
        },
    )

    latest_event = thread_of(api, alice, room, root)["latest_event"]

    assert latest_event["event_id"] == reply
    assert latest_event["unsigned"]["m.relations"]["m.replace"]["event_id"] == fixed


def test_the_thread_summary_is_bundled_in_messages(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    root = send(api, alice, room, "root")
    reply = send(api, bob, room, in_thread(root, "reply"))

    response = api.get(room_path(room, "messages") + "?dir=b&limit=5", token=alice.access_token)

    by_id = {event["event_id"]: event for event in response.body["chunk"]}
    summary = by_id[root]["unsigned"]["m.relations"]["m.thread"]
    assert summary["latest_event"]["event_id"] == reply
    assert summary["count"] == 1
    assert "m.relations" not in by_id[reply]["unsigned"]


def test_replies_from_ignored_users_are_not_aggregated(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, room: str
) -> None:
    root = send(api, alice, room, "root")
    from_bob = send(api, bob, room, in_thread(root, "bob"))
    send(api, carol, room, in_thread(root, "carol"))
    ignore = api.put(
        f"user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {carol.user_id: {}}},
        token=alice.access_token,
    )
    assert ignore.status == 200

    summary = thread_of(api, alice, room, root)

    assert summary["count"] == 1
    assert summary["latest_event"]["event_id"] == from_bob


def test_a_thread_cannot_start_from_an_event_with_a_relation(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    root = send(api, alice, room, "root")
    reply = send(api, bob, room, in_thread(root, "reply"))

    response = api.put(
        room_path(room, "send", "m.room.message", "nested"),
        in_thread(reply, "nested thread"),
        token=alice.access_token,
    )

    assert (response.status, response.errcode) == (400, "M_UNKNOWN")


def test_threads_are_listed_by_latest_activity(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    older = send(api, alice, room, "older root")
    newer = send(api, alice, room, "newer root")
    send(api, bob, room, "not a thread")
    send(api, bob, room, in_thread(newer, "first reply"))
    send(api, bob, room, in_thread(older, "recent reply"))

    response = threads(api, alice, room)

    assert response.status == 200
    assert [e["event_id"] for e in response.body["chunk"]] == [older, newer]
    assert "next_batch" not in response.body
    # Every root comes with its thread aggregation.
    assert all("m.thread" in e["unsigned"]["m.relations"] for e in response.body["chunk"])


def test_threads_paginate(api: MatrixTestClient, alice: Persona, bob: Persona, room: str) -> None:
    roots = [send(api, alice, room, f"root {i}") for i in range(3)]
    for root in roots:
        send(api, bob, room, in_thread(root, "reply"))

    seen: list[str] = []
    page = threads(api, alice, room, limit=1)
    while True:
        assert page.status == 200, page.body
        assert len(page.body["chunk"]) == 1
        seen.extend(e["event_id"] for e in page.body["chunk"])
        if "next_batch" not in page.body:
            break
        page = threads(api, alice, room, limit=1, **{"from": page.body["next_batch"]})

    assert seen == list(reversed(roots))


def test_participated_threads_only(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, room: str
) -> None:
    carols_root = send(api, carol, room, "carol's root")
    replied = send(api, alice, room, "alice's root")
    elsewhere = send(api, alice, room, "another root")
    send(api, bob, room, in_thread(carols_root, "bob replies to carol"))
    send(api, carol, room, in_thread(replied, "carol replies"))
    send(api, bob, room, in_thread(elsewhere, "bob only"))

    participated = threads(api, carol, room, include="participated")
    everything = threads(api, carol, room, include="all")

    assert [e["event_id"] for e in participated.body["chunk"]] == [replied, carols_root]
    assert len(everything.body["chunk"]) == 3


def test_threads_refuse_bad_parameters_and_outsiders(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    private = create_room(api, alice, preset="private_chat")

    outsider = threads(api, bob, private)
    zero = threads(api, alice, private, limit=0)
    bad_include = threads(api, alice, private, include="some")
    bad_token = threads(api, alice, private, **{"from": "nope"})

    assert (outsider.status, outsider.errcode) == (403, "M_FORBIDDEN")
    assert (zero.status, zero.errcode) == (400, "M_INVALID_PARAM")
    assert (bad_include.status, bad_include.errcode) == (400, "M_INVALID_PARAM")
    assert (bad_token.status, bad_token.errcode) == (400, "M_INVALID_PARAM")


def test_a_root_sent_by_an_ignored_user_is_listed_redacted(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    root = send(api, alice, room, "alice's root")
    send(api, bob, room, in_thread(root, "bob's reply"))
    api.put(
        f"user/{bob.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {alice.user_id: {}}},
        token=bob.access_token,
    )

    chunk = threads(api, bob, room).body["chunk"]

    assert [e["event_id"] for e in chunk] == [root]
    assert chunk[0]["content"] == {}
    assert chunk[0]["unsigned"]["m.relations"]["m.thread"]["count"] == 1


def test_the_latest_event_is_the_latest_the_user_may_see(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    set_state(api, alice, room, "m.room.history_visibility", {"history_visibility": "joined"})
    join(api, bob, room)
    root = send(api, alice, room, "root")
    seen = send(api, alice, room, in_thread(root, "while bob is here"))
    leave(api, bob, room)
    send(api, alice, room, in_thread(root, "after bob left"))

    summary = thread_of(api, bob, room, root)

    assert summary["latest_event"]["event_id"] == seen
