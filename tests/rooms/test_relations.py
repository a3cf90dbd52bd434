"""Event relationships: GET /relations, edits, annotations, references, bundled aggregations
(Client-Server API, "Forming relationships between events", "Aggregations of child events",
"Event replacements", "Event annotations and reactions", "Reference relations")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, join, leave, room_path, send, set_state

CLIENT_V1 = "/_matrix/client/v1"


def relations(
    api: MatrixTestClient, who: Persona, room: str, event_id: str, *parts: str, **params: Any
) -> Response:
    path = f"{CLIENT_V1}/{room_path(room, 'relations', event_id, *parts)}"
    query = urlencode(params)
    return api.get(path + (f"?{query}" if query else ""), token=who.access_token)


def get_event(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> dict[str, Any]:
    response = api.get(room_path(room, "event", event_id), token=who.access_token)
    assert response.status == 200, response.body
    return response.body


def edit(room_event_id: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": f"* {body}",
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": room_event_id},
        **extra,
    }


def reaction(event_id: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}


def reference(event_id: str) -> dict[str, Any]:
    return {"body": "ref", "m.relates_to": {"rel_type": "m.reference", "event_id": event_id}}


def redact(api: MatrixTestClient, who: Persona, room: str, event_id: str, txn: str) -> None:
    response = api.put(room_path(room, "redact", event_id, txn), {}, token=who.access_token)
    assert response.status == 200, response.body


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    return room_id


# --- Edits --------------------------------------------------------------------------


def test_the_most_recent_edit_is_bundled_and_the_content_left_intact(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    original = send(api, alice, room, "I like cake")
    send(api, alice, room, edit(original, "I like chocolate cake"))
    latest = send(api, alice, room, edit(original, "I like lemon cake"))

    event = get_event(api, bob, room, original)

    assert event["content"]["body"] == "I like cake"
    replace = event["unsigned"]["m.relations"]["m.replace"]
    assert replace["event_id"] == latest
    assert replace["sender"] == alice.user_id
    assert replace["content"]["m.new_content"]["body"] == "I like lemon cake"


def test_messages_bundle_edits_and_edits_get_no_bundles_of_their_own(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    original = send(api, alice, room, "first")
    the_edit = send(api, alice, room, edit(original, "first!"))
    # A reference to the edit is stored, but an edit is not a parent for aggregations.
    send(api, bob, room, reference(the_edit))

    response = api.get(room_path(room, "messages") + "?dir=b", token=bob.access_token)

    by_id = {event["event_id"]: event for event in response.body["chunk"]}
    assert by_id[original]["unsigned"]["m.relations"]["m.replace"]["event_id"] == the_edit
    assert "m.relations" not in by_id[the_edit]["unsigned"]


def test_an_edit_by_another_user_is_not_applied(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    original = send(api, alice, room, "mine")
    send(api, bob, room, edit(original, "bob's words"))

    event = get_event(api, alice, room, original)

    assert "m.relations" not in event["unsigned"]


def test_invalid_edits_are_ignored(api: MatrixTestClient, alice: Persona, room: str) -> None:
    original = send(api, alice, room, "text")
    good = send(api, alice, room, edit(original, "better text"))
    # Another event type, and no m.new_content: neither is a valid replacement.
    send(api, alice, room, edit(original, "other type"), event_type="org.example.note")
    no_new_content = edit(original, "x")
    del no_new_content["m.new_content"]
    send(api, alice, room, no_new_content)

    event = get_event(api, alice, room, original)

    assert event["unsigned"]["m.relations"]["m.replace"]["event_id"] == good


def test_redacting_the_latest_edit_reverts_to_the_previous_one(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    original = send(api, alice, room, "v1")
    second = send(api, alice, room, edit(original, "v2"))
    third = send(api, alice, room, edit(original, "v3"))

    redact(api, alice, room, third, "r1")

    replace = get_event(api, alice, room, original)["unsigned"]["m.relations"]["m.replace"]
    assert replace["event_id"] == second


def test_a_redacted_original_has_no_edit_bundled(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    original = send(api, alice, room, "oops")
    send(api, alice, room, edit(original, "oops, edited"))

    redact(api, alice, room, original, "r1")

    event = get_event(api, bob, room, original)
    assert event["content"] == {}
    assert "m.replace" not in event["unsigned"].get("m.relations", {})


# --- Annotations --------------------------------------------------------------------


def test_reactions_are_children_but_not_aggregated(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "react to me")
    thumbs = send(api, bob, room, reaction(message, "👍"), event_type="m.reaction")

    response = relations(api, alice, room, message, "m.annotation")

    assert response.status == 200
    assert [e["event_id"] for e in response.body["chunk"]] == [thumbs]
    assert response.body["chunk"][0]["content"]["m.relates_to"]["key"] == "👍"
    # Event annotations: "m.annotation is not included in the m.relations property".
    assert "m.relations" not in get_event(api, alice, room, message)["unsigned"]


def test_the_same_annotation_twice_is_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "hi")
    first = send(api, bob, room, reaction(message, "👍"), event_type="m.reaction", txn_id="r1")

    again = api.put(
        room_path(room, "send", "m.reaction", "r2"),
        reaction(message, "👍"),
        token=bob.access_token,
    )

    assert again.status == 400
    assert again.errcode == "M_DUPLICATE_ANNOTATION"
    # Another key, or another user, is a different annotation.
    send(api, bob, room, reaction(message, "🎉"), event_type="m.reaction")
    send(api, alice, room, reaction(message, "👍"), event_type="m.reaction")
    # A retried transaction answers with the event it created.
    retried = send(api, bob, room, reaction(message, "👍"), event_type="m.reaction", txn_id="r1")
    assert retried == first


def test_an_annotation_may_be_sent_again_once_the_first_is_redacted(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "hi")
    first = send(api, bob, room, reaction(message, "👍"), event_type="m.reaction")
    redact(api, bob, room, first, "r1")

    second = send(api, bob, room, reaction(message, "👍"), event_type="m.reaction")

    chunk = relations(api, alice, room, message).body["chunk"]
    assert [e["event_id"] for e in chunk] == [second]


# --- Replies and references ---------------------------------------------------------


def test_a_rich_reply_is_not_a_child_event(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "question")
    send(
        api,
        bob,
        room,
        {
            "msgtype": "m.text",
            "body": "answer",
            "m.relates_to": {"m.in_reply_to": {"event_id": message}},
        },
    )

    response = relations(api, alice, room, message)

    # m.relates_to requires rel_type: a reply alone forms no relationship for /relations.
    assert response.status == 200
    assert response.body["chunk"] == []
    assert "m.relations" not in get_event(api, alice, room, message)["unsigned"]


def test_references_are_bundled_as_a_chunk_of_event_ids(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "verify me")
    one = send(api, bob, room, reference(message))
    two = send(api, alice, room, reference(message))

    event = get_event(api, bob, room, message)

    assert event["unsigned"]["m.relations"] == {
        "m.reference": {"chunk": [{"event_id": one}, {"event_id": two}]}
    }


def test_children_sent_in_another_room_are_not_bundled(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "here")
    elsewhere = create_room(api, alice, preset="public_chat")
    send(api, alice, elsewhere, edit(message, "there"))
    send(api, alice, elsewhere, reference(message))
    thread = {"body": "t", "m.relates_to": {"rel_type": "m.thread", "event_id": message}}
    send(api, alice, elsewhere, thread)

    # alice is in both rooms and could see the children.
    assert "m.relations" not in get_event(api, alice, room, message).get("unsigned", {})
    local = send(api, bob, room, reference(message))
    assert get_event(api, alice, room, message)["unsigned"]["m.relations"] == {
        "m.reference": {"chunk": [{"event_id": local}]}
    }


# --- GET /relations -----------------------------------------------------------------


def test_relations_paginate_backwards_newest_first(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "popular")
    keys = ["a", "b", "c", "d", "e"]
    ids = [send(api, bob, room, reaction(message, k), event_type="m.reaction") for k in keys]

    seen: list[str] = []
    page = relations(api, alice, room, message, limit=2)
    assert "prev_batch" not in page.body
    while True:
        assert page.status == 200, page.body
        seen.extend(e["event_id"] for e in page.body["chunk"])
        if "next_batch" not in page.body:
            break
        token = page.body["next_batch"]
        page = relations(api, alice, room, message, limit=2, **{"from": token})
        assert page.body["prev_batch"] == token

    assert seen == list(reversed(ids))


def test_relations_forwards_and_up_to_a_token(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "popular")
    ids = [send(api, bob, room, reaction(message, k), event_type="m.reaction") for k in "abcd"]

    forwards = relations(api, alice, room, message, dir="f", limit=3)
    assert [e["event_id"] for e in forwards.body["chunk"]] == ids[:3]
    rest = relations(api, alice, room, message, dir="f", **{"from": forwards.body["next_batch"]})
    assert [e["event_id"] for e in rest.body["chunk"]] == ids[3:]
    assert "next_batch" not in rest.body

    # Backwards from the newest down to (not including) the first page's boundary.
    first_page = relations(api, alice, room, message, limit=2)
    bounded = relations(api, alice, room, message, to=first_page.body["next_batch"])
    assert [e["event_id"] for e in bounded.body["chunk"]] == [ids[3], ids[2]]


def test_relations_filter_by_rel_type_and_event_type(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    message = send(api, alice, room, "parent")
    react = send(api, bob, room, reaction(message, "👍"), event_type="m.reaction")
    ref_message = send(api, bob, room, reference(message))
    ref_other = send(api, bob, room, reference(message), event_type="org.example.ref")

    everything = relations(api, alice, room, message).body["chunk"]
    references = relations(api, alice, room, message, "m.reference").body["chunk"]
    typed = relations(api, alice, room, message, "m.reference", "org.example.ref").body["chunk"]

    assert [e["event_id"] for e in everything] == [ref_other, ref_message, react]
    assert [e["event_id"] for e in references] == [ref_other, ref_message]
    assert [e["event_id"] for e in typed] == [ref_other]


def test_relations_carry_their_own_bundles(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    root = send(api, alice, room, "root")
    reply = send(api, bob, room, {"msgtype": "m.text", "body": "in thread", **_thread(root)})
    fixed = send(api, bob, room, edit(reply, "in thread!"))

    chunk = relations(api, alice, room, root, "m.thread").body["chunk"]

    assert [e["event_id"] for e in chunk] == [reply]
    assert chunk[0]["unsigned"]["m.relations"]["m.replace"]["event_id"] == fixed


def _thread(root: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


def test_recurse_follows_children_of_children(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    root = send(api, alice, room, "root")
    reply = send(api, bob, room, {"msgtype": "m.text", "body": "reply", **_thread(root)})
    react = send(api, alice, room, reaction(reply, "👀"), event_type="m.reaction")

    direct = relations(api, alice, room, root)
    recursive = relations(api, alice, room, root, recurse="true")
    not_recursive = relations(api, alice, room, root, recurse="false")

    assert [e["event_id"] for e in direct.body["chunk"]] == [reply]
    assert "recursion_depth" not in direct.body
    assert [e["event_id"] for e in recursive.body["chunk"]] == [react, reply]
    assert recursive.body["recursion_depth"] >= 3
    assert [e["event_id"] for e in not_recursive.body["chunk"]] == [reply]
    assert "recursion_depth" in not_recursive.body
    annotations = relations(api, alice, room, root, "m.annotation", recurse="true")
    assert [e["event_id"] for e in annotations.body["chunk"]] == [react]


def test_a_relation_outside_the_users_history_is_hidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    set_state(api, alice, room, "m.room.history_visibility", {"history_visibility": "joined"})
    join(api, bob, room)
    message = send(api, alice, room, "while bob is here")
    seen = send(api, alice, room, reaction(message, "1"), event_type="m.reaction")
    leave(api, bob, room)
    send(api, alice, room, reaction(message, "2"), event_type="m.reaction")

    chunk = relations(api, bob, room, message).body["chunk"]

    assert [e["event_id"] for e in chunk] == [seen]


def test_relations_of_an_unknown_or_invisible_event_are_not_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")
    message = send(api, alice, room, "private")

    unknown = relations(api, alice, room, "$nope")
    hidden = relations(api, bob, room, message)

    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    assert (hidden.status, hidden.errcode) == (404, "M_NOT_FOUND")


def test_bad_relations_parameters_are_matrix_errors(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    message = send(api, alice, room, "x")

    for params in ({"dir": "sideways"}, {"from": "nonsense"}, {"recurse": "maybe"}):
        response = relations(api, alice, room, message, **params)
        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), params
    assert (
        api.get(f"{CLIENT_V1}/{room_path(room, 'relations', message)}").errcode
        == "M_MISSING_TOKEN"
    )


def _queries_for_messages(api: MatrixTestClient, who: Persona, room: str, limit: int) -> int:
    path = room_path(room, "messages") + f"?dir=b&limit={limit}"
    api.get(path, token=who.access_token)  # warm the state and event caches
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path, token=who.access_token)
    assert response.status == 200
    return len(queries)


def test_bundling_costs_the_same_queries_whatever_the_page_size(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    for i in range(6):
        message = send(api, alice, room, f"message {i}")
        send(api, alice, room, edit(message, f"message {i}, edited"))
        send(api, bob, room, reference(message))
        send(api, bob, room, {"msgtype": "m.text", "body": "reply", **_thread(message)})

    # Each group of four events is a parent with an edit, a reference and a thread.
    small = _queries_for_messages(api, bob, room, 4)
    large = _queries_for_messages(api, bob, room, 24)

    assert large == small, (small, large)
    assert small <= 20
