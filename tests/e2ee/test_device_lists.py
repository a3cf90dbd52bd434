"""Device list tracking: /sync's ``device_lists`` and GET /keys/changes (Client-Server
API, "Tracking the device list for a user" and "Extensions to /sync").

``changed`` names the users sharing a room with the syncing user whose devices or
cross-signing keys changed (a device added, removed, renamed or re-keyed), and those
who started sharing a room; ``left`` names those who stopped sharing every room. Users
sharing no room are never named, and a change wakes the long-polls of those who share.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.test.utils import CaptureQueriesContext

from streams import positions
from tests.conftest import MatrixTestClient, Persona, second_device
from tests.e2ee.helpers import CrossSigning, publish
from tests.rooms.helpers import create_room, invite, join, leave
from tests.sync.ephemeral_helpers import shared_room
from tests.sync.extension_helpers import sync


def device_lists(api: MatrixTestClient, who: Persona, since: str) -> tuple[dict[str, Any], str]:
    body = sync(api, who, since=since)
    return body.get("device_lists", {}), body["next_batch"]


def keys_changes(api: MatrixTestClient, who: Persona, since: str, upto: str) -> dict[str, Any]:
    query = urlencode({"from": since, "to": upto})
    response = api.get(f"keys/changes?{query}", token=who.access_token)
    assert response.status == 200, response.body
    result: dict[str, Any] = response.body
    return result


def test_key_upload_new_device_rename_and_removal_are_changes(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    carol_token = sync(api, carol)["next_batch"]

    publish(api, alice)
    lists, token = device_lists(api, bob, token)
    assert lists == {"changed": [alice.user_id], "left": []}

    other = second_device(api, alice)
    lists, token = device_lists(api, bob, token)
    assert lists["changed"] == [alice.user_id]

    api.put(f"devices/{other.device_id}", {"display_name": "tablet"}, token=other.access_token)
    lists, token = device_lists(api, bob, token)
    assert lists["changed"] == [alice.user_id]

    api.post("logout", token=other.access_token)
    lists, token = device_lists(api, bob, token)
    assert lists["changed"] == [alice.user_id]

    # Nothing new: nothing named.
    lists, token = device_lists(api, bob, token)
    assert lists == {"changed": [], "left": []}
    # Carol shares no room with alice.
    lists, _ = device_lists(api, carol, carol_token)
    assert alice.user_id not in lists["changed"]


def test_own_changes_and_cross_signing_uploads_are_changes(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    shared_room(api, alice, bob)
    bob_token = sync(api, bob)["next_batch"]
    alice_token = sync(api, alice)["next_batch"]

    api.post(
        "keys/device_signing/upload",
        CrossSigning(alice.user_id).upload_body(),
        token=alice.access_token,
    )

    assert device_lists(api, bob, bob_token)[0]["changed"] == [alice.user_id]
    assert device_lists(api, alice, alice_token)[0]["changed"] == [alice.user_id]


def test_starting_and_stopping_to_share_a_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice)
    invite(api, alice, room, bob)
    join(api, bob, room)
    token = sync(api, bob)["next_batch"]
    carol_token = sync(api, carol)["next_batch"]

    invite(api, alice, room, carol)
    join(api, carol, room)
    lists, token = device_lists(api, bob, token)
    assert lists == {"changed": [carol.user_id], "left": []}
    # Carol joined a room with alice and bob in it: both are new to her.
    carol_lists, carol_token = device_lists(api, carol, carol_token)
    assert carol_lists == {"changed": [alice.user_id, bob.user_id], "left": []}

    leave(api, carol, room)
    lists, token = device_lists(api, bob, token)
    assert lists == {"changed": [], "left": [carol.user_id]}
    carol_lists, _ = device_lists(api, carol, carol_token)
    assert carol_lists == {"changed": [], "left": [alice.user_id, bob.user_id]}


def test_leaving_one_of_two_shared_rooms_is_not_leaving(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    first = shared_room(api, alice, bob)
    shared_room(api, alice, bob)
    token = sync(api, alice)["next_batch"]
    leave(api, bob, first)
    lists, _ = device_lists(api, alice, token)
    assert lists == {"changed": [], "left": []}


def test_a_profile_change_is_not_a_new_member(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    shared_room(api, alice, bob)
    token = sync(api, alice)["next_batch"]
    response = api.put(
        f"profile/{bob.user_id}/displayname", {"displayname": "Robert"}, token=bob.access_token
    )
    assert response.status == 200
    lists, _ = device_lists(api, alice, token)
    assert lists == {"changed": [], "left": []}


def test_an_initial_sync_has_no_device_lists(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    shared_room(api, alice, bob)
    publish(api, alice)
    assert "device_lists" not in sync(api, bob)


def test_keys_changes_between_two_tokens(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = shared_room(api, alice, bob)
    start = sync(api, bob)["next_batch"]
    publish(api, alice)
    invite(api, alice, room, carol)
    join(api, carol, room)
    middle = sync(api, bob)["next_batch"]
    assert keys_changes(api, bob, start, middle) == {
        "changed": [alice.user_id, carol.user_id],
        "left": [],
    }

    leave(api, carol, room)
    end = sync(api, bob)["next_batch"]
    assert keys_changes(api, bob, middle, end) == {"changed": [], "left": [carol.user_id]}
    # Only users who share a room now are named as changed ("currently share a room").
    assert keys_changes(api, bob, start, end)["changed"] == [alice.user_id]


def test_keys_changes_refuses_bad_tokens(api: MatrixTestClient, alice: Persona) -> None:
    for query in ("from=s1", "to=s1", "from=nonsense&to=s1", "from=s1&to=s-4"):
        response = api.get(f"keys/changes?{query}", token=alice.access_token)
        assert response.status == 400, query
        assert response.errcode in ("M_INVALID_PARAM", "M_MISSING_PARAM")


def test_a_change_wakes_those_who_share_a_room(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    carol: Persona,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
) -> None:
    shared_room(api, alice, bob)
    woken: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(
        "streams.notifier.notify_stream_moved",
        lambda stream, position, room_id=None, user_ids=None: woken.append(
            (stream, sorted(user_ids or []))
        ),
    )
    with django_capture_on_commit_callbacks(execute=True):
        publish(api, alice)
    assert (positions.DEVICE_LISTS, sorted([alice.user_id, bob.user_id])) in woken
    assert all(carol.user_id not in users for _, users in woken)


def test_device_list_queries_do_not_grow_with_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    rooms = [shared_room(api, alice, bob, carol) for _ in range(6)]
    token = sync(api, bob)["next_batch"]
    publish(api, alice)
    for room in rooms:
        leave(api, carol, room)

    with CaptureQueriesContext(connection) as queries:
        lists, _ = device_lists(api, bob, token)

    assert lists == {"changed": [alice.user_id], "left": [carol.user_id]}
    ours = [
        q
        for q in queries.captured_queries
        if "e2ee_devicelistchange" in q["sql"]
        or (
            "rooms_event" in q["sql"]
            and "m.room.member" in q["sql"]
            and "rooms_membership" in q["sql"]
        )
    ]
    assert 2 <= len(ours) <= 3
