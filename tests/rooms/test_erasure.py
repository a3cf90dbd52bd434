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
from tests.rooms.helpers import create_room, join, messages, room_path, send
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
