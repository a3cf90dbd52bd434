"""Erasure (Client-Server API, "Account deactivation"): "any users (or servers) which
join the room after the erasure request are served redacted copies of the events sent by
this account. Users which had visibility on those events prior to the erasure are still
able to see unredacted copies." As Synapse does, a viewer who was not joined at the event
gets the redacted copy, whether they joined before or after the erasure."""

from typing import Any

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import (
    create_room,
    join,
    membership_action,
    messages,
    room_path,
    send,
    set_state,
)
from tests.rooms.test_federation_membership import remote_join
from tests.sync.helpers import joined, sync

SECRET = {"msgtype": "m.text", "body": "my secret"}


def _deactivate(api: MatrixTestClient, who: Persona, *, erase: bool) -> None:
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": who.localpart},
        "password": who.password,
    }
    response = api.post(
        "account/deactivate", {"auth": auth, "erase": erase}, token=who.access_token
    )
    assert response.status == 200, response.body


def _event(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> dict[str, Any]:
    response = api.get(room_path(room, "event", event_id), token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def _context(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> dict[str, Any]:
    response = api.get(room_path(room, "context", event_id), token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body["event"]
    return body


def _from_messages(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> Any:
    response = messages(api, who, room, dir="b", limit=50)
    assert response.status == 200, response.body
    return next(e for e in response.body["chunk"] if e["event_id"] == event_id)


def _from_sync(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> Any:
    timeline = joined(sync(api, who))[room]["timeline"]["events"]
    return next(e for e in timeline if e["event_id"] == event_id)


def _contents_everywhere(
    api: MatrixTestClient, who: Persona, room: str, event_id: str
) -> list[dict[str, Any]]:
    """The event's content in GET /event, /context, /messages and an initial /sync."""
    return [
        read(api, who, room, event_id)["content"]
        for read in (_event, _context, _from_messages, _from_sync)
    ]


@pytest.fixture
def scene(api: MatrixTestClient, alice: Persona, bob: Persona) -> dict[str, Any]:
    """bob sends a message while carol is joined; dave joins after it."""
    room = create_room(api, alice, preset="public_chat")
    carol = api.register("carol")
    dave = api.register("dave")
    join(api, bob, room)
    join(api, carol, room)
    event_id = send(api, bob, room, SECRET)
    join(api, dave, room)
    return {"room": room, "event_id": event_id, "carol": carol, "dave": dave}


def test_an_original_member_still_sees_an_erased_users_message(
    api: MatrixTestClient, bob: Persona, scene: dict[str, Any]
) -> None:
    _deactivate(api, bob, erase=True)
    assert (
        _contents_everywhere(api, scene["carol"], scene["room"], scene["event_id"]) == [SECRET] * 4
    )


def test_a_member_who_joined_after_the_message_sees_it_redacted(
    api: MatrixTestClient, bob: Persona, scene: dict[str, Any]
) -> None:
    # dave joined after the message but before the erasure.
    _deactivate(api, bob, erase=True)
    seen = _contents_everywhere(api, scene["dave"], scene["room"], scene["event_id"])
    assert seen == [{}] * 4
    event = _event(api, scene["dave"], scene["room"], scene["event_id"])
    assert (event["type"], event["sender"]) == ("m.room.message", bob.user_id)


def test_a_member_who_joined_after_the_erasure_sees_it_redacted(
    api: MatrixTestClient, bob: Persona, scene: dict[str, Any]
) -> None:
    _deactivate(api, bob, erase=True)
    erin = api.register("erin")
    join(api, erin, scene["room"])
    assert _contents_everywhere(api, erin, scene["room"], scene["event_id"]) == [{}] * 4


def test_a_later_joiner_sees_the_message_whole_until_the_erasure(
    api: MatrixTestClient, scene: dict[str, Any]
) -> None:
    assert (
        _contents_everywhere(api, scene["dave"], scene["room"], scene["event_id"]) == [SECRET] * 4
    )


def test_a_deactivation_without_erasure_changes_nothing(
    api: MatrixTestClient, bob: Persona, scene: dict[str, Any]
) -> None:
    _deactivate(api, bob, erase=False)
    erin = api.register("erin")
    join(api, erin, scene["room"])
    for who in (scene["carol"], scene["dave"], erin):
        assert _contents_everywhere(api, who, scene["room"], scene["event_id"]) == [SECRET] * 4


def test_an_erased_users_message_is_redacted_in_search_results_for_a_later_joiner(
    api: MatrixTestClient, bob: Persona, scene: dict[str, Any]
) -> None:
    _deactivate(api, bob, erase=True)
    body = {"search_categories": {"room_events": {"search_term": "secret"}}}
    for who, content in ((scene["carol"], SECRET), (scene["dave"], {})):
        response = api.post("search", body, token=who.access_token)
        assert response.status == 200, response.body
        results = response.body["search_categories"]["room_events"]["results"]
        assert [r["result"]["content"] for r in results] == [content]


def test_an_erased_users_thread_reply_is_redacted_in_relations_and_bundles(
    api: MatrixTestClient, alice: Persona, bob: Persona, scene: dict[str, Any]
) -> None:
    room, carol, dave = scene["room"], scene["carol"], scene["dave"]
    root = send(api, alice, room, "root")
    reply_content = {
        "msgtype": "m.text",
        "body": "my reply",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }
    reply = send(api, bob, room, reply_content)
    _deactivate(api, bob, erase=True)
    # Both were joined when the reply was sent.
    for who in (carol, dave):
        assert _event(api, who, room, reply)["content"] == reply_content
    erin = api.register("erin")
    join(api, erin, room)
    for who, content in ((carol, reply_content), (erin, {})):
        bundled = _event(api, who, room, root)["unsigned"]["m.relations"]["m.thread"]
        assert bundled["latest_event"]["content"] == content
        path = "/_matrix/client/v1/" + room_path(room, "relations", root)
        got = api.get(path, token=who.access_token)
        assert got.status == 200, got.body
        assert [e["content"] for e in got.body["chunk"]] == [content]


# --- Other servers (rooms.federation.access.ServerVisibility) --------------------------


def _served_to(api: MatrixTestClient, server: RemoteServer, room: str, event_id: str) -> list[Any]:
    """The event's content as GET /event and GET /backfill serve it to ``server``."""
    got = fed(api, server, "GET", f"{F}/event/{event_id}")
    assert got.status == 200, got.body
    backfill = fed(api, server, "GET", f"{F}/backfill/{room}?v={event_id}&limit=1")
    assert backfill.status == 200, backfill.body
    return [got.body["pdus"][0]["content"], backfill.body["pdus"][0]["content"]]


@pytest.mark.parametrize("erase", [True, False])
def test_a_server_that_joined_after_the_message_is_served_it_redacted(
    api: MatrixTestClient, alice: Persona, bob: Persona, erase: bool
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    early, late = RemoteServer("dave.test"), RemoteServer("erin.test")
    for server in (early, late):
        server.install_keys()
    remote_join(api, early, room)
    event_id = send(api, bob, room, SECRET)
    remote_join(api, late, room, "erin")
    _deactivate(api, bob, erase=erase)
    assert _served_to(api, early, room, event_id) == [SECRET] * 2
    assert _served_to(api, late, room, event_id) == [{} if erase else SECRET] * 2


# --- State and prev_content (rooms.selectors.as_served) -------------------------------

NAME = {"name": "bob's secret room"}
BOB_TOPIC = {"topic": "bob's secret topic"}
ALICE_TOPIC = {"topic": "alice's topic"}
BAN = {"membership": "ban", "reason": "bob's secret reason"}
BOB_PROFILE = {"membership": "join", "displayname": "Bob Secret"}


@pytest.fixture
def state_scene(api: MatrixTestClient, alice: Persona, bob: Persona) -> dict[str, Any]:
    """While carol is joined, bob gives himself a display name, names the room, sets a
    topic (which alice then replaces: bob's is its prev_content) and bans mallory with a
    reason; then bob is erased (his leave replaces his named member event) and erin
    joins."""
    room = create_room(
        api,
        alice,
        preset="public_chat",
        power_level_content_override={"users": {bob.user_id: 50}},
    )
    carol, mallory = api.register("carol"), api.register("mallory")
    for who in (bob, carol, mallory):
        join(api, who, room)
    set_state(api, bob, room, "m.room.member", BOB_PROFILE, bob.user_id)
    set_state(api, bob, room, "m.room.name", NAME)
    set_state(api, bob, room, "m.room.topic", BOB_TOPIC)
    membership_action(api, bob, room, "ban", mallory, reason=BAN["reason"])
    topic_id = set_state(api, alice, room, "m.room.topic", ALICE_TOPIC).body["event_id"]
    _deactivate(api, bob, erase=True)
    erin = api.register("erin")
    join(api, erin, room)
    return {"room": room, "topic_id": topic_id, "carol": carol, "erin": erin, "mallory": mallory}


# What carol (joined at all of bob's events) and erin (joined after the erasure) see.
WHOLE = {"name": NAME, "ban": BAN, "prev_topic": BOB_TOPIC, "prev_bob": BOB_PROFILE}
REDACTED = {
    "name": {},
    "ban": {"membership": "ban"},
    "prev_topic": {},
    "prev_bob": {"membership": "join"},
}


def _seen_in(state: list[dict[str, Any]], mallory: Persona, bob: Persona) -> dict[str, Any]:
    """The parts of bob's events in a list of state events (with ``prev_content``)."""
    by_key = {(e["type"], e["state_key"]): e for e in state}
    return {
        "name": by_key[("m.room.name", "")]["content"],
        "ban": by_key[("m.room.member", mallory.user_id)]["content"],
        "prev_topic": by_key[("m.room.topic", "")]["unsigned"]["prev_content"],
        "prev_bob": by_key[("m.room.member", bob.user_id)]["unsigned"]["prev_content"],
    }


def _get(api: MatrixTestClient, who: Persona, path: str) -> Any:
    response = api.get(path, token=who.access_token)
    assert response.status == 200, response.body
    return response.body


@pytest.mark.parametrize(("viewer", "expected"), [("carol", WHOLE), ("erin", REDACTED)])
def test_an_erased_users_state_events_in_the_state_endpoints(
    api: MatrixTestClient,
    bob: Persona,
    state_scene: dict[str, Any],
    viewer: str,
    expected: dict[str, Any],
) -> None:
    room, who, mallory = state_scene["room"], state_scene[viewer], state_scene["mallory"]
    # GET /state
    assert _seen_in(_get(api, who, room_path(room, "state")), mallory, bob) == expected
    # GET /state/{eventType}/{stateKey}, the content and the whole event
    assert _get(api, who, room_path(room, "state", "m.room.name", "")) == expected["name"]
    ban = _get(api, who, room_path(room, "state", "m.room.member", mallory.user_id))
    assert ban == expected["ban"]
    topic = _get(api, who, room_path(room, "state", "m.room.topic", "") + "?format=event")
    assert (topic["content"], topic["unsigned"]["prev_content"]) == (
        ALICE_TOPIC,
        expected["prev_topic"],
    )
    # GET /members
    chunk = _get(api, who, room_path(room, "members"))["chunk"]
    members = {e["state_key"]: e for e in chunk}
    assert members[mallory.user_id]["content"] == expected["ban"]
    assert members[bob.user_id]["unsigned"]["prev_content"] == expected["prev_bob"]
    # GET /joined_members: an erased user has left every room (no event of theirs there).
    assert bob.user_id not in _get(api, who, room_path(room, "joined_members"))["joined"]


@pytest.mark.parametrize(("viewer", "expected"), [("carol", WHOLE), ("erin", REDACTED)])
def test_an_erased_users_state_events_in_sync_and_the_legacy_initial_syncs(
    api: MatrixTestClient,
    bob: Persona,
    state_scene: dict[str, Any],
    viewer: str,
    expected: dict[str, Any],
) -> None:
    room, who, mallory = state_scene["room"], state_scene[viewer], state_scene["mallory"]
    # The last event (erin's join) in the timeline, bob's events in the state section.
    body = sync(api, who, filter={"room": {"timeline": {"limit": 1}}})
    assert _seen_in(joined(body)[room]["state"]["events"], mallory, bob) == expected
    entry = next(r for r in _get(api, who, "initialSync?limit=1")["rooms"] if r["room_id"] == room)
    assert _seen_in(entry["state"], mallory, bob) == expected
    # The legacy format repeats prev_content at the top level.
    assert {e["type"]: e for e in entry["state"]}["m.room.topic"]["prev_content"] == (
        expected["prev_topic"]
    )
    room_entry = _get(api, who, room_path(room, "initialSync") + "?limit=1")
    assert _seen_in(room_entry["state"], mallory, bob) == expected


@pytest.mark.parametrize(("viewer", "expected"), [("carol", WHOLE), ("erin", REDACTED)])
def test_an_erased_users_content_as_prev_content_and_in_context_and_messages_state(
    api: MatrixTestClient,
    bob: Persona,
    state_scene: dict[str, Any],
    viewer: str,
    expected: dict[str, Any],
) -> None:
    room, who, topic_id = state_scene["room"], state_scene[viewer], state_scene["topic_id"]
    # alice's topic event, whole to both, with bob's topic as its prev_content.
    event = _get(api, who, room_path(room, "event", topic_id))
    assert (event["content"], event["unsigned"]["prev_content"]) == (
        ALICE_TOPIC,
        expected["prev_topic"],
    )
    context = _get(api, who, room_path(room, "context", topic_id) + "?limit=0")
    assert context["event"]["unsigned"]["prev_content"] == expected["prev_topic"]
    state = {(e["type"], e["state_key"]): e for e in context["state"]}
    # The state after alice's topic: bob's name and ban, his named member event.
    assert state[("m.room.name", "")]["content"] == expected["name"]
    assert state[("m.room.member", state_scene["mallory"].user_id)]["content"] == expected["ban"]
    assert state[("m.room.member", bob.user_id)]["content"] == expected["prev_bob"]
    chunk = messages(api, who, room, dir="b", limit=50).body["chunk"]
    in_messages = next(e for e in chunk if e["event_id"] == topic_id)
    assert in_messages["unsigned"]["prev_content"] == expected["prev_topic"]
    # /messages with lazy-loaded members: bob's named member event, at his m.room.name.
    lazy = {"lazy_load_members": True, "types": ["m.room.name"]}
    page = messages(api, who, room, dir="b", filter=lazy).body
    assert [e["content"] for e in page["chunk"]] == [expected["name"]]
    assert [e["content"] for e in page["state"]] == [expected["prev_bob"]]


@pytest.mark.parametrize(("viewer", "expected"), [("carol", WHOLE), ("erin", REDACTED)])
def test_an_erased_users_state_events_in_search_state_and_profiles(
    api: MatrixTestClient,
    bob: Persona,
    state_scene: dict[str, Any],
    viewer: str,
    expected: dict[str, Any],
) -> None:
    room, who, mallory = state_scene["room"], state_scene[viewer], state_scene["mallory"]
    criteria = {
        "search_term": "alice",
        "include_state": True,
        "event_context": {"before_limit": 5, "after_limit": 0, "include_profile": True},
    }
    response = api.post(
        "search", {"search_categories": {"room_events": criteria}}, token=who.access_token
    )
    assert response.status == 200, response.body
    found = response.body["search_categories"]["room_events"]
    assert _seen_in(found["state"][room], mallory, bob) == expected
    [result] = found["results"]
    assert result["result"]["event_id"] == state_scene["topic_id"]
    # bob's profile in the state after alice's topic: his named member event.
    profile = result["context"]["profile_info"][bob.user_id]
    assert profile == {k: v for k, v in expected["prev_bob"].items() if k == "displayname"}
