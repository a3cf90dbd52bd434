"""POST /search, category room_events (Client-Server API, "Server Side Search"):
matching on content.body, content.name and content.topic, rank and recent order,
pagination, context, highlights, groups, state; only what the searcher may see (rooms
they are or were in, history visibility as /messages applies it), never a redacted
event; events from other servers as searchable as local ones."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any
from urllib.parse import quote

import pytest
from django.apps import apps

from protocol.errors import MatrixError
from rooms.models import Event, EventSearch
from rooms.services.incoming import receive_pdu
from tests.conftest import MatrixTestClient, Persona, Response
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import remote_pdu
from tests.rooms.helpers import (
    bodies,
    create_room,
    invite,
    join,
    leave,
    room_path,
    send,
    set_state,
)

CAROL_SERVER = "carol.example:8448"


def post_search(
    api: MatrixTestClient, who: Persona, body: Any, next_batch: str | None = None
) -> Response:
    path = "search" + (f"?next_batch={quote(next_batch)}" if next_batch is not None else "")
    return api.post(path, body, token=who.access_token)


def search(
    api: MatrixTestClient,
    who: Persona,
    term: str,
    next_batch: str | None = None,
    **criteria: Any,
) -> dict[str, Any]:
    """The ``room_events`` result of a search for ``term``."""
    body = {"search_categories": {"room_events": {"search_term": term, **criteria}}}
    response = post_search(api, who, body, next_batch)
    assert response.status == 200, response.body
    return response.body["search_categories"]["room_events"]


def found(result: dict[str, Any]) -> list[str]:
    """The event IDs of the results, in order."""
    return [item["result"]["event_id"] for item in result["results"]]


def texts(result: dict[str, Any]) -> list[str]:
    """What each result says: its body, name or topic, in order."""
    out = []
    for item in result["results"]:
        content = item["result"]["content"]
        out.append(content.get("body") or content.get("name") or content.get("topic"))
    return out


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona) -> str:
    return create_room(api, alice, preset="public_chat")


# --- Matching --------------------------------------------------------------------------


def test_messages_names_and_topics_match_on_their_words(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    fox = send(api, alice, room, "The quick brown fox")
    send(api, alice, room, "A lazy dog")
    set_state(api, alice, room, "m.room.name", {"name": "Fox den"})
    set_state(api, alice, room, "m.room.topic", {"topic": "Where the foxes sleep"})

    everything = search(api, alice, "fox")
    bodies_only = search(api, alice, "fox", keys=["content.body"])

    assert sorted(texts(everything)) == ["Fox den", "The quick brown fox", "Where the foxes sleep"]
    assert everything["count"] == 3
    assert found(bodies_only) == [fox]
    assert bodies_only["count"] == 1
    assert search(api, alice, "quick fox")["count"] == 1
    assert search(api, alice, "quick dog")["results"] == []
    assert search(api, alice, "zebra") == {"results": [], "count": 0, "highlights": []}


def test_the_rich_topic_text_is_searched_as_the_topic(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    content = {"m.topic": {"m.text": [{"body": "Gardening tips", "mimetype": "text/plain"}]}}
    set_state(api, alice, room, "m.room.topic", content)

    assert len(search(api, alice, "gardening", keys=["content.topic"])["results"]) == 1


def test_a_filter_narrows_the_search(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    other = create_room(api, alice)
    by_alice = send(api, alice, room, "cheese from alice")
    by_bob = send(api, bob, room, "cheese from bob")
    elsewhere = send(api, alice, other, "cheese elsewhere")

    def ids(room_filter: dict[str, Any]) -> set[str]:
        return set(found(search(api, alice, "cheese", filter=room_filter)))

    assert ids({}) == {by_alice, by_bob, elsewhere}
    assert ids({"senders": [bob.user_id]}) == {by_bob}
    assert ids({"not_senders": [bob.user_id]}) == {by_alice, elsewhere}
    assert ids({"rooms": [other]}) == {elsewhere}
    assert ids({"not_rooms": [other]}) == {by_alice, by_bob}
    assert ids({"types": ["m.room.name"]}) == set()


def test_ignored_users_messages_are_left_out(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    send(api, bob, room, "noisy words")
    api.put(
        f"user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
        token=alice.access_token,
    )

    assert search(api, alice, "noisy")["results"] == []


# --- Order, rank, pagination, highlights ------------------------------------------------


def test_rank_order_puts_the_best_match_first(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    dense = send(api, alice, room, "walrus walrus walrus")
    send(api, alice, room, "a walrus came by one day, and then many other animals went past too")

    result = search(api, alice, "walrus", order_by="rank")

    assert found(result)[0] == dense
    ranks = [item["rank"] for item in result["results"]]
    assert ranks == sorted(ranks, reverse=True)
    assert ranks[0] > ranks[1]


def test_recent_order_puts_the_newest_first(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    sent = [send(api, alice, room, f"apple number {n}") for n in range(3)]

    assert found(search(api, alice, "apple", order_by="recent")) == sent[::-1]


@pytest.mark.parametrize("order_by", ["rank", "recent"])
def test_next_batch_pages_through_every_match_once(
    api: MatrixTestClient, alice: Persona, room: str, order_by: str
) -> None:
    sent = {send(api, alice, room, f"pear {'pear ' * n}{n}") for n in range(5)}
    criteria = {"order_by": order_by, "filter": {"limit": 2}}

    pages = [search(api, alice, "pear", **criteria)]
    while "next_batch" in pages[-1]:
        pages.append(search(api, alice, "pear", next_batch=pages[-1]["next_batch"], **criteria))

    seen = [event_id for page in pages for event_id in found(page)]
    assert [len(found(page)) for page in pages[:3]] == [2, 2, 1]
    assert sorted(seen) == sorted(sent)
    assert all(page["count"] == 5 for page in pages)
    if order_by == "rank":
        ranks = [item["rank"] for page in pages for item in page["results"]]
        assert ranks == sorted(ranks, reverse=True)


def test_highlights_are_the_words_matched(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    send(api, alice, room, "Running late, Bananas!")

    result = search(api, alice, "run banana")

    assert {"run", "banana", "Running", "Bananas"} <= set(result["highlights"])
    assert "late" not in result["highlights"]


# --- Context, groups, state ---------------------------------------------------------------


def test_event_context_gives_the_events_around_each_result_and_profiles(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    def rename(name: str) -> None:
        member = {"membership": "join", "displayname": name}
        set_state(api, alice, room, "m.room.member", member, alice.user_id)

    rename("Alice A.")
    for body in ("one", "two", "needle here", "three", "four", "five"):
        send(api, alice, room, body)
    # The profile at the time of the context, not the current one.
    rename("Alice Z.")

    result = search(
        api,
        alice,
        "needle",
        event_context={"before_limit": 1, "after_limit": 2, "include_profile": True},
    )

    (item,) = result["results"]
    context = item["context"]
    assert [e["content"]["body"] for e in context["events_before"]] == ["two"]
    assert [e["content"]["body"] for e in context["events_after"]] == ["three", "four"]
    assert context["profile_info"] == {alice.user_id: {"displayname": "Alice A."}}
    assert context["start"]
    assert context["end"]
    # The tokens page on from the context, as /context's do.
    more = api.get(
        room_path(room, "messages") + f"?from={context['end']}&dir=f&limit=5",
        token=alice.access_token,
    )
    assert bodies(more.body["chunk"]) == ["five"]


def test_default_context_is_five_each_side(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    for n in range(7):
        send(api, alice, room, f"filler {n}")
    send(api, alice, room, "needle")
    for n in range(7):
        send(api, alice, room, f"after {n}")

    (item,) = search(api, alice, "needle", event_context={})["results"]

    assert len(item["context"]["events_before"]) == 5
    assert len(item["context"]["events_after"]) == 5
    assert "profile_info" not in item["context"]


def test_results_grouped_by_room_and_sender(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    other = create_room(api, alice, preset="public_chat")
    join(api, bob, other)
    first = send(api, alice, room, "kiwi")
    second = send(api, bob, other, "kiwi")
    third = send(api, alice, other, "kiwi")

    result = search(
        api,
        alice,
        "kiwi",
        order_by="recent",
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
    )

    by_room = result["groups"]["room_id"]
    assert by_room[other]["results"] == [third, second]
    assert by_room[room]["results"] == [first]
    assert by_room[other]["order"] < by_room[room]["order"]
    by_sender = result["groups"]["sender"]
    assert by_sender[alice.user_id]["results"] == [third, first]
    assert by_sender[bob.user_id]["results"] == [second]


def test_a_rooms_next_batch_pages_within_that_room(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    other = create_room(api, alice)
    send(api, alice, other, "grape elsewhere")
    mine = [send(api, alice, room, f"grape {n}") for n in range(3)]
    criteria = {
        "order_by": "recent",
        "filter": {"limit": 1},
        "groupings": {"group_by": [{"key": "room_id"}]},
    }

    first = search(api, alice, "grape", **criteria)
    token = first["groups"]["room_id"][room]["next_batch"]
    rest = search(api, alice, "grape", next_batch=token, **{**criteria, "filter": {"limit": 10}})

    assert found(first) == [mine[2]]
    assert found(rest) == [mine[1], mine[0]]
    assert "next_batch" not in rest


def test_include_state_gives_each_rooms_state(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    set_state(api, alice, room, "m.room.name", {"name": "Orchard"})
    send(api, alice, room, "plum")

    result = search(api, alice, "plum", include_state=True)

    state = {(e["type"], e["state_key"]): e for e in result["state"][room]}
    assert state[("m.room.name", "")]["content"] == {"name": "Orchard"}
    assert ("m.room.member", alice.user_id) in state
    assert "state" not in search(api, alice, "plum")


# --- Who sees what ----------------------------------------------------------------------


def test_a_room_never_joined_is_not_searched(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    send(api, alice, room, "secret plans")

    assert search(api, bob, "secret") == {"results": [], "count": 0, "highlights": []}


def test_a_left_room_is_searched_up_to_the_leave(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    during = send(api, alice, room, "melon while bob is here")
    leave(api, bob, room)
    send(api, alice, room, "melon after bob left")

    assert found(search(api, bob, "melon")) == [during]
    api.post(room_path(room, "forget"), {}, token=bob.access_token)
    assert search(api, bob, "melon")["results"] == []


def test_an_invite_rejected_is_no_room_to_search(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")
    set_state(api, alice, room, "m.room.history_visibility", {"history_visibility": "invited"})
    invite(api, alice, room, bob)
    send(api, alice, room, "lemon while bob is invited")
    leave(api, bob, room)

    assert search(api, bob, "lemon")["results"] == []


@pytest.mark.parametrize(
    ("visibility", "seen"),
    [
        ("shared", {"before", "invited", "joined"}),
        ("invited", {"invited", "joined"}),
        ("joined", {"joined"}),
        ("world_readable", {"before", "invited", "joined"}),
    ],
)
def test_history_visibility_applies_as_in_messages(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    visibility: str,
    seen: set[str],
) -> None:
    room = create_room(api, alice, preset="private_chat")
    set_state(api, alice, room, "m.room.history_visibility", {"history_visibility": visibility})
    send(api, alice, room, "cherry before")
    invite(api, alice, room, bob)
    send(api, alice, room, "cherry invited")
    join(api, bob, room)
    send(api, alice, room, "cherry joined")

    result = search(api, bob, "cherry")

    assert {text.split()[1] for text in texts(result)} == seen
    # The same events /messages shows bob.
    history = api.get(room_path(room, "messages") + "?limit=50", token=bob.access_token)
    shown = {e["event_id"] for e in history.body["chunk"] if e["type"] == "m.room.message"}
    assert set(found(result)) == shown


def test_a_redacted_event_is_not_found(api: MatrixTestClient, alice: Persona, room: str) -> None:
    kept = send(api, alice, room, "mango one")
    gone = send(api, alice, room, "mango two")

    response = api.put(
        room_path(room, "redact", gone, "r1"), {"reason": "oops"}, token=alice.access_token
    )

    assert response.status == 200, response.body
    assert found(search(api, alice, "mango")) == [kept]
    assert not EventSearch.objects.filter(event__event_id=gone).exists()


def test_events_from_other_servers_are_searchable(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    server = RemoteServer(CAROL_SERVER)
    server.install_keys()
    carol = server.user("carol")
    receive_pdu(
        remote_pdu(room, server, carol, "m.room.member", {"membership": "join"}, carol),
        origin=CAROL_SERVER,
    )
    message = remote_pdu(
        room, server, carol, "m.room.message", {"msgtype": "m.text", "body": "papaya from afar"}
    )
    event_id = receive_pdu(message, origin=CAROL_SERVER).event_id

    result = search(api, alice, "papaya")

    assert found(result) == [event_id]
    assert result["results"][0]["result"]["sender"] == carol
    # And its redaction by its own server removes it.
    redaction = remote_pdu(room, server, carol, "m.room.redaction", {"redacts": event_id})
    receive_pdu(redaction, origin=CAROL_SERVER)
    assert search(api, alice, "papaya")["results"] == []


def test_a_rejected_event_from_another_server_is_not_found(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    server = RemoteServer(CAROL_SERVER)
    server.install_keys()
    carol = server.user("carol")
    # Carol never joined: her message fails the auth rules and is stored rejected.
    content = {"msgtype": "m.text", "body": "guava from a stranger"}
    message = remote_pdu(room, server, carol, "m.room.message", content)
    with contextlib.suppress(MatrixError):
        receive_pdu(message, origin=CAROL_SERVER)
    stored = Event.objects.get(sender=carol, type="m.room.message")
    assert stored.rejected_reason is not None

    assert search(api, alice, "guava")["results"] == []


def test_events_stored_before_search_are_indexed_by_the_migration(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    kept = send(api, alice, room, "quince")
    redacted = send(api, alice, room, "quince too")
    api.put(room_path(room, "redact", redacted, "r1"), {}, token=alice.access_token)
    EventSearch.objects.all().delete()
    assert search(api, alice, "quince")["results"] == []

    migration = importlib.import_module("rooms.migrations.0011_event_search")
    migration.index_existing_events(apps, None)

    assert found(search(api, alice, "quince")) == [kept]


# --- Bad requests -------------------------------------------------------------------------


def test_bad_requests_are_refused(api: MatrixTestClient, alice: Persona, room: str) -> None:
    send(api, alice, room, "fig")

    def refused(body: Any, next_batch: str | None = None) -> str | None:
        response = post_search(api, alice, body, next_batch)
        assert response.status == 400, response.body
        return response.errcode

    criteria = {"search_term": "fig"}
    assert refused({}) == "M_MISSING_PARAM"
    assert refused({"search_categories": []}) == "M_BAD_JSON"
    assert refused({"search_categories": {"room_events": {}}}) == "M_MISSING_PARAM"
    assert refused({"search_categories": {"room_events": {"search_term": 3}}}) == "M_BAD_JSON"
    for bad in (
        {"order_by": "oldest"},
        {"keys": ["content.msgtype"]},
        {"groupings": {"group_by": [{"key": "type"}]}},
    ):
        body = {"search_categories": {"room_events": {**criteria, **bad}}}
        assert refused(body) == "M_INVALID_PARAM"
    body = {"search_categories": {"room_events": {**criteria, "filter": {"senders": "x"}}}}
    assert refused(body) == "M_BAD_JSON"
    body = {"search_categories": {"room_events": criteria}}
    assert refused(body, next_batch="not a token") == "M_INVALID_PARAM"
    send(api, alice, room, "fig again")
    first_page = search(api, alice, "fig", filter={"limit": 1})
    recent = {"search_categories": {"room_events": {**criteria, "order_by": "recent"}}}
    assert refused(recent, next_batch=first_page["next_batch"]) == "M_INVALID_PARAM"
    assert "next_batch" not in search(api, alice, "fig", filter={"limit": 0})


def test_no_room_events_category_is_an_empty_answer(api: MatrixTestClient, alice: Persona) -> None:
    response = post_search(api, alice, {"search_categories": {}})

    assert response.status == 200
    assert response.body == {"search_categories": {}}


def test_r0_serves_the_same(api: MatrixTestClient, alice: Persona, room: str) -> None:
    send(api, alice, room, "date palm")
    body = {"search_categories": {"room_events": {"search_term": "date"}}}

    response = api.post("/_matrix/client/r0/search", body, token=alice.access_token)

    assert response.status == 200, response.body
    assert len(response.body["search_categories"]["room_events"]["results"]) == 1
