"""Room tags (Client-Server API, "Room Tagging"): m.tag room account data, set and
removed one tag at a time, only by the user themselves, and delivered by /sync."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room
from tests.sync.extension_helpers import joined, sync


def tags_path(who: Persona, room: str, tag: str | None = None) -> str:
    path = f"user/{quote(who.user_id, safe='')}/rooms/{quote(room, safe='')}/tags"
    return path + (f"/{quote(tag, safe='')}" if tag is not None else "")


def get_tags(api: MatrixTestClient, who: Persona, room: str) -> dict[str, Any]:
    response = api.get(tags_path(who, room), token=who.access_token)
    assert response.status == 200, response.body
    tags: dict[str, Any] = response.body["tags"]
    return tags


def put_tag(api: MatrixTestClient, who: Persona, room: str, tag: str, body: Any) -> int:
    return api.put(tags_path(who, room, tag), body, token=who.access_token).status


def test_a_room_without_tags(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    assert get_tags(api, alice, room) == {}


def test_add_and_remove_tags(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    assert put_tag(api, alice, room, "m.favourite", {"order": 0.25}) == 200
    assert put_tag(api, alice, room, "u.Work", {}) == 200

    assert get_tags(api, alice, room) == {"m.favourite": {"order": 0.25}, "u.Work": {}}

    assert api.delete(tags_path(alice, room, "u.Work"), token=alice.access_token).status == 200
    assert get_tags(api, alice, room) == {"m.favourite": {"order": 0.25}}
    # Removing a tag the room does not have is fine.
    assert api.delete(tags_path(alice, room, "u.Work"), token=alice.access_token).status == 200


def test_putting_a_tag_again_replaces_its_order(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    put_tag(api, alice, room, "m.favourite", {"order": 0.25})
    put_tag(api, alice, room, "m.favourite", {"order": 1})

    assert get_tags(api, alice, room) == {"m.favourite": {"order": 1}}


def test_tags_are_room_account_data_in_sync(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    token = sync(api, alice)["next_batch"]
    put_tag(api, alice, room, "m.lowpriority", {"order": 0.5})

    body = sync(api, alice, since=token)

    assert joined(body)[room]["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {"m.lowpriority": {"order": 0.5}}}}
    ]
    api.delete(tags_path(alice, room, "m.lowpriority"), token=alice.access_token)
    later = sync(api, alice, since=body["next_batch"])
    assert joined(later)[room]["account_data"]["events"] == [
        {"type": "m.tag", "content": {"tags": {}}}
    ]


def test_only_the_user_themselves(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)
    path = tags_path(alice, room, "m.favourite")

    for response in (
        api.get(tags_path(alice, room), token=bob.access_token),
        api.put(path, {}, token=bob.access_token),
        api.delete(path, token=bob.access_token),
    ):
        assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_bad_tags_are_refused(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    def errcode(tag: str, body: Any) -> str | None:
        return api.put(tags_path(alice, room, tag), body, token=alice.access_token).errcode

    assert errcode("m.favourite", {"order": 2}) == "M_BAD_JSON"
    assert errcode("m.favourite", {"order": "0.5"}) == "M_BAD_JSON"
    assert errcode("m.favourite", {"order": True}) == "M_BAD_JSON"
    assert errcode("m.favourite", []) == "M_BAD_JSON"
    assert errcode("x" * 256, {}) == "M_INVALID_PARAM"
    bad_room = api.get(tags_path(alice, "not-a-room"), token=alice.access_token)
    assert bad_room.errcode == "M_INVALID_PARAM"
