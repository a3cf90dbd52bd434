"""Presence (Client-Server API, "Presence").

PUT sets one's own presence; GET shows it to oneself and to users sharing a room
(403 otherwise); /sync's set_presence marks the syncing user, and /sync's presence
section carries m.presence events of the users one shares a room with.
TRELLIS_PRESENCE=off accepts PUT, answers GET with offline and sends no presence.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from presence.models import Presence
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, invite, join
from tests.sync.extension_helpers import sync


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")


def status_path(who: Persona | str) -> str:
    user_id = who if isinstance(who, str) else who.user_id
    return f"presence/{quote(user_id, safe='')}/status"


def put_presence(api: MatrixTestClient, who: Persona, **body: Any) -> None:
    response = api.put(status_path(who), body, token=who.access_token)
    assert response.status == 200, response.body


def get_presence(api: MatrixTestClient, viewer: Persona, who: Persona) -> dict[str, Any]:
    response = api.get(status_path(who), token=viewer.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def presence_events(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["sender"]: e["content"] for e in body.get("presence", {}).get("events", [])}


def share_a_room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room = create_room(api, alice)
    invite(api, alice, room, bob)
    join(api, bob, room)
    return room


def test_set_and_get_ones_own_presence(api: MatrixTestClient, alice: Persona) -> None:
    put_presence(api, alice, presence="unavailable", status_msg="at lunch")

    body = get_presence(api, alice, alice)

    assert body["presence"] == "unavailable"
    assert body["status_msg"] == "at lunch"
    assert body["currently_active"] is False
    assert 0 <= body["last_active_ago"] < 60_000


def test_online_is_currently_active(api: MatrixTestClient, alice: Persona) -> None:
    put_presence(api, alice, presence="online")

    body = get_presence(api, alice, alice)

    assert (body["presence"], body["currently_active"]) == ("online", True)
    assert "status_msg" not in body


def test_online_without_activity_for_five_minutes_reads_as_unavailable(
    api: MatrixTestClient, alice: Persona
) -> None:
    put_presence(api, alice, presence="online")
    Presence.objects.filter(user_id=alice.user_id).update(last_active_ts=1)

    body = get_presence(api, alice, alice)

    assert (body["presence"], body["currently_active"]) == ("unavailable", False)


def test_a_user_without_presence_is_offline(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    share_a_room(api, alice, bob)

    assert get_presence(api, alice, bob) == {"presence": "offline"}


def test_presence_is_visible_to_users_sharing_a_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    share_a_room(api, alice, bob)
    put_presence(api, bob, presence="online", status_msg="hi")

    assert get_presence(api, alice, bob)["status_msg"] == "hi"


def test_presence_of_strangers_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    put_presence(api, bob, presence="online")

    response = api.get(status_path(bob), token=alice.access_token)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_nobody_sets_another_users_presence(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = api.put(status_path(bob), {"presence": "online"}, token=alice.access_token)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_bad_requests(api: MatrixTestClient, alice: Persona) -> None:
    def put(body: Any) -> str | None:
        return api.put(status_path(alice), body, token=alice.access_token).errcode

    assert put({}) == "M_MISSING_PARAM"
    assert put({"presence": "busy"}) == "M_BAD_JSON"
    assert put({"presence": "online", "status_msg": 3}) == "M_BAD_JSON"
    assert api.get(status_path("nobody"), token=alice.access_token).errcode == "M_INVALID_PARAM"


def test_sync_marks_the_user_online_and_lists_their_own_presence(
    api: MatrixTestClient, alice: Persona
) -> None:
    body = sync(api, alice)

    assert presence_events(body)[alice.user_id]["presence"] == "online"
    assert get_presence(api, alice, alice)["presence"] == "online"
    # Already online and active: the next sync is no news.
    again = sync(api, alice, since=body["next_batch"])
    assert again["next_batch"] == body["next_batch"]
    assert presence_events(again) == {}


def test_set_presence_unavailable_and_offline(api: MatrixTestClient, alice: Persona) -> None:
    sync(api, alice, set_presence="unavailable")
    assert get_presence(api, alice, alice)["presence"] == "unavailable"

    put_presence(api, alice, presence="online", status_msg="here")
    # offline: this sync does not mark the user at all.
    sync(api, alice, set_presence="offline")
    body = get_presence(api, alice, alice)
    assert (body["presence"], body["status_msg"]) == ("online", "here")


def test_a_sync_keeps_the_status_message(api: MatrixTestClient, alice: Persona) -> None:
    put_presence(api, alice, presence="unavailable", status_msg="away")

    sync(api, alice)

    body = get_presence(api, alice, alice)
    assert (body["presence"], body["status_msg"]) == ("online", "away")


def test_a_bad_set_presence_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("sync?set_presence=busy", token=alice.access_token)

    assert response.errcode == "M_INVALID_PARAM"


def test_incremental_sync_lists_changes_of_users_sharing_a_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    share_a_room(api, alice, bob)
    token = sync(api, alice, set_presence="offline")["next_batch"]
    put_presence(api, bob, presence="unavailable", status_msg="brb")
    put_presence(api, carol, presence="online")

    body = sync(api, alice, since=token, set_presence="offline")

    assert presence_events(body) == {
        bob.user_id: {
            "presence": "unavailable",
            "status_msg": "brb",
            "currently_active": False,
            "last_active_ago": presence_events(body)[bob.user_id]["last_active_ago"],
        }
    }
    assert [e["type"] for e in body["presence"]["events"]] == ["m.presence"]
    # Delivered once.
    later = sync(api, alice, since=body["next_batch"], set_presence="offline")
    assert presence_events(later) == {}


def test_joining_a_room_brings_its_members_presence(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    put_presence(api, alice, presence="unavailable", status_msg="in a meeting")
    put_presence(api, carol, presence="online")
    token = sync(api, bob, set_presence="offline")["next_batch"]
    join(api, bob, room)

    body = sync(api, bob, since=token, set_presence="offline")

    # alice's presence did not change since the token, but bob had none of it.
    assert presence_events(body)[alice.user_id]["status_msg"] == "in a meeting"
    assert carol.user_id not in presence_events(body)
    # A member who never set any presence is offline.
    dan = api.register("dan")
    join(api, dan, room)
    token = body["next_batch"]
    room_two = create_room(api, dan, preset="public_chat")
    join(api, bob, room_two)
    body = sync(api, bob, since=token, set_presence="offline")
    assert presence_events(body)[dan.user_id] == {"presence": "offline"}
    later = sync(api, bob, since=body["next_batch"], set_presence="offline")
    assert presence_events(later) == {}


def test_a_new_member_brings_their_presence_to_the_others(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    put_presence(api, bob, presence="online", status_msg="hi all")
    token = sync(api, alice, set_presence="offline")["next_batch"]
    join(api, bob, room)

    body = sync(api, alice, since=token, set_presence="offline")

    assert presence_events(body)[bob.user_id]["status_msg"] == "hi all"
    # A profile change re-sends the join event; it is no news of presence.
    token = body["next_batch"]
    response = api.put(
        f"profile/{quote(bob.user_id, safe='')}/displayname",
        {"displayname": "Bob"},
        token=bob.access_token,
    )
    assert response.status == 200, response.body
    assert bob.user_id not in presence_events(
        sync(api, alice, since=token, set_presence="offline")
    )


def test_the_presence_filter_applies(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    share_a_room(api, alice, bob)
    put_presence(api, bob, presence="online")

    none = sync(api, alice, filter={"presence": {"not_types": ["*"]}}, set_presence="offline")
    others = sync(api, alice, filter={"presence": {"not_senders": [alice.user_id]}})

    assert presence_events(none) == {}
    assert set(presence_events(others)) == {bob.user_id}


@pytest.fixture
def presence_off(settings: Any) -> None:
    settings.PRESENCE_ENABLED = False


@pytest.mark.usefixtures("presence_off")
def test_with_presence_off_put_is_accepted_and_ignored(
    api: MatrixTestClient, alice: Persona
) -> None:
    put_presence(api, alice, presence="online", status_msg="here")

    assert get_presence(api, alice, alice) == {"presence": "offline"}
    assert not Presence.objects.exists()
    # The body is still checked.
    assert api.put(status_path(alice), {}, token=alice.access_token).errcode == "M_MISSING_PARAM"


@pytest.mark.usefixtures("presence_off")
def test_with_presence_off_sync_has_no_presence(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    share_a_room(api, alice, bob)
    put_presence(api, bob, presence="online")

    body = sync(api, alice)

    assert "presence" not in body
    assert not Presence.objects.exists()
