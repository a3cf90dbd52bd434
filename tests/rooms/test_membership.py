"""Room membership (Client-Server API, "Room membership"): join, invite, leave, forget,
kick, ban, unban, knock, restricted joins, and the member lists."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.conf import settings

from rooms.models import Event
from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import network
from tests.graph.remote import RemoteServer
from tests.rooms.federation_peers import Peers, peers
from tests.rooms.helpers import (
    create_room,
    invite,
    join,
    leave,
    membership_action,
    messages,
    room_path,
    send,
    set_state,
    state_map,
)
from tests.sync.helpers import joined as joined_sync
from tests.sync.helpers import sync

__all__ = ["network", "peers"]


def membership_of(api: MatrixTestClient, viewer: Persona, room: str, user: Persona) -> str | None:
    member = state_map(api, viewer, room).get(("m.room.member", user.user_id))
    return None if member is None else member["content"]["membership"]


def joined_rooms(api: MatrixTestClient, who: Persona) -> list[str]:
    response = api.get("joined_rooms", token=who.access_token)
    assert response.status == 200, response.body
    return response.body["joined_rooms"]


# -- joining ---------------------------------------------------------------------------


def test_anyone_can_join_a_public_room_by_id(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    response = join(api, bob, room)

    assert response.body == {"room_id": room}
    assert membership_of(api, alice, room, bob) == "join"
    assert joined_rooms(api, bob) == [room]


def test_rooms_room_id_join_joins_too(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")

    response = api.post(room_path(room, "join"), token=bob.access_token)

    assert response.status == 200
    assert response.body == {"room_id": room}
    assert membership_of(api, alice, room, bob) == "join"


def test_a_room_can_be_joined_by_its_alias(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat", room_alias_name="lobby")

    response = join(api, bob, f"#lobby:{settings.SERVER_NAME}")

    assert response.body == {"room_id": room}
    assert membership_of(api, alice, room, bob) == "join"


def test_an_unknown_alias_or_room_is_not_found(api: MatrixTestClient, bob: Persona) -> None:
    unknown_alias = join(api, bob, f"#nowhere:{settings.SERVER_NAME}", expect=404)
    unknown_room = join(api, bob, f"!nowhere:{settings.SERVER_NAME}", expect=404)

    assert unknown_alias.errcode == "M_NOT_FOUND"
    assert unknown_room.errcode == "M_NOT_FOUND"


def test_joining_twice_is_harmless(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    join(api, bob, room)

    assert membership_of(api, alice, room, bob) == "join"


def test_joining_again_unchanged_makes_no_new_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    first = state_map(api, alice, room)[("m.room.member", bob.user_id)]["event_id"]
    count = Event.objects.filter(room__room_id=room).count()
    since = sync(api, bob)["next_batch"]

    response = join(api, bob, room)

    assert response.body == {"room_id": room}
    assert state_map(api, alice, room)[("m.room.member", bob.user_id)]["event_id"] == first
    assert Event.objects.filter(room__room_id=room).count() == count
    assert room not in joined_sync(sync(api, bob, since=since, timeout=0))


def test_joining_again_with_other_content_is_a_new_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    first = state_map(api, alice, room)[("m.room.member", bob.user_id)]["event_id"]

    response = api.post(room_path(room, "join"), {"reason": "back"}, token=bob.access_token)

    assert response.status == 200, response.body
    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["event_id"] != first
    assert member["content"]["reason"] == "back"


def test_the_join_carries_the_users_display_name(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]

    assert member["content"] == {"membership": "join", "displayname": "bob"}
    assert member["sender"] == bob.user_id


def test_a_join_keeps_its_reason_and_content_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    body = {"reason": "looking for support", "foo": "bar"}
    response = api.post(room_path(room, "join"), body, token=bob.access_token)

    assert response.status == 200, response.body
    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"] == {
        "membership": "join",
        "displayname": "bob",
        "reason": "looking for support",
        "foo": "bar",
    }


def test_a_join_by_alias_keeps_its_reason_and_content_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat", room_alias_name="help")

    body = {"reason": "looking for support", "foo": {"nested": 1}}
    response = api.post(
        f"join/{quote(f'#help:{settings.SERVER_NAME}', safe='')}", body, token=bob.access_token
    )

    assert response.status == 200, response.body
    content = state_map(api, alice, room)[("m.room.member", bob.user_id)]["content"]
    assert content["reason"] == "looking for support"
    assert content["foo"] == {"nested": 1}
    assert content["membership"] == "join"


def test_a_join_body_cannot_change_the_membership(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    body = {"membership": "ban"}
    response = api.post(room_path(room, "join"), body, token=bob.access_token)

    assert response.status == 200, response.body
    assert membership_of(api, alice, room, bob) == "join"


def test_a_join_reason_must_be_a_string(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    response = api.post(room_path(room, "join"), {"reason": 5}, token=bob.access_token)

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert membership_of(api, alice, room, bob) is None


def test_an_uninvited_user_cannot_join_an_invite_only_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")

    response = join(api, bob, room, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) is None
    assert joined_rooms(api, bob) == []


# -- inviting --------------------------------------------------------------------------


def test_an_invited_user_can_join_an_invite_only_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")

    response = invite(api, alice, room, bob)

    assert response.body == {}
    assert membership_of(api, alice, room, bob) == "invite"
    assert joined_rooms(api, bob) == []
    join(api, bob, room)
    assert membership_of(api, alice, room, bob) == "join"
    assert joined_rooms(api, bob) == [room]


def test_an_invite_keeps_its_reason(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)

    membership_action(api, alice, room, "invite", bob, reason="come along")

    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"]["reason"] == "come along"
    assert member["sender"] == alice.user_id


def test_inviting_needs_the_invite_level(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    # public_chat: invite needs 50; bob has 0.
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = invite(api, bob, room, carol, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, carol) is None


def test_in_a_private_chat_any_member_may_invite(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat", invite=[bob.user_id])
    join(api, bob, room)

    invite(api, bob, room, carol)

    assert membership_of(api, alice, room, carol) == "invite"


def test_a_non_member_cannot_invite(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")

    response = invite(api, bob, room, carol, expect=403)

    assert response.errcode == "M_FORBIDDEN"


def test_a_joined_user_cannot_be_invited(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = invite(api, alice, room, bob, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) == "join"


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"user_id": 5}, "M_BAD_JSON"),
        ({"user_id": "bob"}, "M_INVALID_PARAM"),
    ],
)
def test_an_invite_needs_a_valid_user_id(
    api: MatrixTestClient, alice: Persona, body: dict[str, object], errcode: str
) -> None:
    room = create_room(api, alice)

    response = api.post(room_path(room, "invite"), body, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == errcode


# -- leaving and forgetting ------------------------------------------------------------


def test_leaving_a_room(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = api.post(room_path(room, "leave"), {"reason": "bye"}, token=bob.access_token)

    assert response.status == 200
    assert response.body == {}
    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"] == {"membership": "leave", "reason": "bye"}
    assert joined_rooms(api, bob) == []


def test_leaving_takes_an_empty_body(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = api.request("POST", room_path(room, "leave"), raw=b"", token=bob.access_token)

    assert response.status == 200
    assert membership_of(api, alice, room, bob) == "leave"


def test_leaving_an_invite_rejects_it(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, invite=[bob.user_id])

    leave(api, bob, room)

    assert membership_of(api, alice, room, bob) == "leave"
    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"


def test_a_user_who_left_an_invite_only_room_needs_a_new_invite(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, invite=[bob.user_id])
    join(api, bob, room)
    leave(api, bob, room)

    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"
    invite(api, alice, room, bob)
    join(api, bob, room)


def test_leaving_a_room_one_is_not_in_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    response = leave(api, bob, room, expect=403)

    assert response.errcode == "M_FORBIDDEN"


def test_leaving_an_unknown_room_is_not_found(api: MatrixTestClient, bob: Persona) -> None:
    response = leave(api, bob, f"!nowhere:{settings.SERVER_NAME}", expect=404)

    assert response.errcode == "M_NOT_FOUND"


def test_a_forgotten_room_is_no_longer_readable(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    send(api, alice, room, "before")
    leave(api, bob, room)
    assert messages(api, bob, room).status == 200

    response = api.post(room_path(room, "forget"), token=bob.access_token)

    assert response.status == 200
    assert response.body == {}
    assert messages(api, bob, room).status == 403
    assert api.get(room_path(room, "state"), token=bob.access_token).status == 403


def test_rejoining_a_forgotten_room_remembers_it_again(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    leave(api, bob, room)
    api.post(room_path(room, "forget"), token=bob.access_token)

    join(api, bob, room)

    assert messages(api, bob, room).status == 200
    assert joined_rooms(api, bob) == [room]


def test_a_joined_room_cannot_be_forgotten(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    response = api.post(room_path(room, "forget"), token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"
    assert joined_rooms(api, alice) == [room]


def test_a_pending_invite_cannot_be_forgotten(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, invite=[bob.user_id])

    response = api.post(room_path(room, "forget"), token=bob.access_token)

    assert response.status == 400
    assert response.errcode == "M_UNKNOWN"


# -- kicking ---------------------------------------------------------------------------


def test_a_moderator_can_kick(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = membership_action(api, alice, room, "kick", bob, reason="spam")

    assert response.body == {}
    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"] == {"membership": "leave", "reason": "spam"}
    assert member["sender"] == alice.user_id
    assert joined_rooms(api, bob) == []
    # A kick is not a ban: the room is public, bob may come back.
    join(api, bob, room)


def test_a_kick_withdraws_an_invite(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, invite=[bob.user_id])

    membership_action(api, alice, room, "kick", bob)

    assert membership_of(api, alice, room, bob) == "leave"
    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"


def test_bob_cannot_kick_without_power(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    join(api, carol, room)

    refused_carol = membership_action(api, bob, room, "kick", carol, expect=403)
    refused_alice = membership_action(api, bob, room, "kick", alice, expect=403)

    assert refused_carol.errcode == refused_alice.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, carol) == "join"
    assert membership_of(api, alice, room, alice) == "join"


def test_kicking_someone_not_in_the_room_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    response = membership_action(api, alice, room, "kick", bob, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) is None


# -- banning ---------------------------------------------------------------------------


def test_a_banned_user_cannot_rejoin_until_unbanned(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    membership_action(api, alice, room, "ban", bob, reason="trolling")

    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"] == {"membership": "ban", "reason": "trolling"}
    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"
    assert joined_rooms(api, bob) == []

    membership_action(api, alice, room, "unban", bob)

    assert membership_of(api, alice, room, bob) == "leave"
    join(api, bob, room)


def test_a_user_can_be_banned_before_ever_joining(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    membership_action(api, alice, room, "ban", bob)

    assert membership_of(api, alice, room, bob) == "ban"
    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"


def test_a_banned_user_cannot_be_invited(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    membership_action(api, alice, room, "ban", bob)

    assert invite(api, alice, room, bob, expect=403).errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) == "ban"


def test_a_banned_user_cannot_unban_themselves_by_leaving(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    membership_action(api, alice, room, "ban", bob)

    assert leave(api, bob, room, expect=403).errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) == "ban"


def test_bob_cannot_ban_or_unban_without_power(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    join(api, carol, room)

    refused_ban = membership_action(api, bob, room, "ban", carol, expect=403)
    membership_action(api, alice, room, "ban", carol)
    refused_unban = membership_action(api, bob, room, "unban", carol, expect=403)

    assert refused_ban.errcode == refused_unban.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, carol) == "ban"


def test_unbanning_a_user_who_is_not_banned_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = membership_action(api, alice, room, "unban", bob, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) == "join"


def test_a_moderator_given_the_ban_level_can_ban(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(
        api,
        alice,
        room_version="11",
        preset="public_chat",
        power_level_content_override={"users": {alice.user_id: 100, bob.user_id: 50}},
    )
    join(api, bob, room)
    join(api, carol, room)

    membership_action(api, bob, room, "ban", carol)

    assert membership_of(api, alice, room, carol) == "ban"
    # ... but not someone at or above their own level.
    assert membership_action(api, bob, room, "ban", alice, expect=403).errcode == "M_FORBIDDEN"


# -- knocking --------------------------------------------------------------------------


def knock(api: MatrixTestClient, who: Persona, room: str, *, expect: int = 200) -> Response:
    response = api.post(
        f"knock/{quote(room, safe='')}", {"reason": "let me in"}, token=who.access_token
    )
    assert response.status == expect, response.body
    return response


@pytest.mark.parametrize("version", ["7", "8", "9", "10", "11", "12"])
def test_knocking_on_a_knock_room_then_being_let_in(
    api: MatrixTestClient, alice: Persona, bob: Persona, version: str
) -> None:
    room = create_room(
        api,
        alice,
        room_version=version,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )

    response = knock(api, bob, room)

    assert response.body == {"room_id": room}
    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"]["membership"] == "knock"
    assert member["content"]["reason"] == "let me in"
    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"
    invite(api, alice, room, bob)
    join(api, bob, room)
    assert membership_of(api, alice, room, bob) == "join"


def test_a_knock_can_be_denied_by_a_kick(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    knock(api, bob, room)

    membership_action(api, alice, room, "kick", bob)

    assert membership_of(api, alice, room, bob) == "leave"


def test_a_knock_by_alias(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(
        api,
        alice,
        room_alias_name="door",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )

    response = knock(api, bob, f"#door:{settings.SERVER_NAME}")

    assert response.body == {"room_id": room}
    assert membership_of(api, alice, room, bob) == "knock"


def test_knocking_is_refused_in_room_version_6(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        room_version="6",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )

    response = knock(api, bob, room, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, bob) is None


@pytest.mark.parametrize("preset", ["public_chat", "private_chat"])
def test_knocking_on_a_room_without_the_knock_rule_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona, preset: str
) -> None:
    room = create_room(api, alice, preset=preset)

    response = knock(api, bob, room, expect=403)

    assert response.errcode == "M_FORBIDDEN"


def test_a_banned_user_cannot_knock(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(
        api,
        alice,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    membership_action(api, alice, room, "ban", bob)

    assert knock(api, bob, room, expect=403).errcode == "M_FORBIDDEN"


def test_knocking_on_an_unknown_room_is_not_found(api: MatrixTestClient, bob: Persona) -> None:
    response = knock(api, bob, f"!nowhere:{settings.SERVER_NAME}", expect=404)

    assert response.errcode == "M_NOT_FOUND"


# -- restricted joins ------------------------------------------------------------------


def restricted_room(api: MatrixTestClient, alice: Persona, version: str, space: str) -> str:
    return create_room(
        api,
        alice,
        room_version=version,
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )


@pytest.mark.parametrize("version", ["8", "9", "10", "11", "12"])
def test_a_member_of_an_allowed_room_can_join_a_restricted_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, version: str
) -> None:
    space = create_room(api, alice, room_version=version, preset="public_chat")
    join(api, bob, space)
    room = restricted_room(api, alice, version, space)

    join(api, bob, room)
    refused = join(api, carol, room, expect=403)

    member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
    assert member["content"]["membership"] == "join"
    assert member["content"]["join_authorised_via_users_server"] == alice.user_id
    assert refused.errcode == "M_FORBIDDEN"


def test_the_restricted_join_rule_does_not_exist_before_room_version_8(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    space = create_room(api, alice, room_version="7", preset="public_chat")
    join(api, bob, space)
    room = restricted_room(api, alice, "7", space)

    assert join(api, bob, room, expect=403).errcode == "M_FORBIDDEN"


def test_an_invited_user_joins_a_restricted_room_without_an_allowed_room(
    api: MatrixTestClient, alice: Persona, carol: Persona
) -> None:
    space = create_room(api, alice, preset="public_chat")
    room = restricted_room(api, alice, "10", space)
    invite(api, alice, room, carol)

    join(api, carol, room)

    member = state_map(api, alice, room)[("m.room.member", carol.user_id)]
    assert "join_authorised_via_users_server" not in member["content"]


# -- /joined_rooms, /members, /joined_members ------------------------------------------


def test_joined_rooms_lists_only_joined_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    joined = create_room(api, alice, preset="public_chat")
    invited = create_room(api, alice, invite=[bob.user_id])
    left = create_room(api, alice, preset="public_chat")
    banned = create_room(api, alice, preset="public_chat")
    join(api, bob, joined)
    join(api, bob, left)
    leave(api, bob, left)
    membership_action(api, alice, banned, "ban", bob)

    assert joined_rooms(api, bob) == [joined]
    assert sorted(joined_rooms(api, alice)) == sorted([joined, invited, left, banned])
    assert invited not in joined_rooms(api, bob)


def test_joined_rooms_needs_a_token(api: MatrixTestClient) -> None:
    assert api.get("joined_rooms").errcode == "M_MISSING_TOKEN"


def member_list(api: MatrixTestClient, who: Persona, room: str, query: str = "") -> dict[str, str]:
    response = api.get(room_path(room, "members") + query, token=who.access_token)
    assert response.status == 200, response.body
    assert all(e["type"] == "m.room.member" for e in response.body["chunk"])
    return {e["state_key"]: e["content"]["membership"] for e in response.body["chunk"]}


@pytest.fixture
def crowded_room(api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona) -> str:
    """alice joined, bob left, carol invited."""
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    leave(api, bob, room)
    invite(api, alice, room, carol)
    return room


def test_members_lists_every_membership(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, crowded_room: str
) -> None:
    assert member_list(api, alice, crowded_room) == {
        alice.user_id: "join",
        bob.user_id: "leave",
        carol.user_id: "invite",
    }


def test_members_filters_by_membership_and_not_membership(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, crowded_room: str
) -> None:
    assert member_list(api, alice, crowded_room, "?membership=join") == {alice.user_id: "join"}
    assert member_list(api, alice, crowded_room, "?not_membership=leave") == {
        alice.user_id: "join",
        carol.user_id: "invite",
    }
    # Both together are an "or": membership is join, or is not invite.
    assert member_list(api, alice, crowded_room, "?membership=join&not_membership=invite") == {
        alice.user_id: "join",
        bob.user_id: "leave",
    }


@pytest.mark.parametrize("param", ["membership", "not_membership"])
def test_members_refuses_an_unknown_membership(
    api: MatrixTestClient, alice: Persona, crowded_room: str, param: str
) -> None:
    # rooms.yaml: both parameters are enums of the five memberships.
    response = api.get(
        room_path(crowded_room, "members") + f"?{param}=bogus", token=alice.access_token
    )
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_members_at_a_token_is_the_membership_at_that_point(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    send(api, alice, room, "bob is here")
    token = messages(api, alice, room, limit=1).body["start"]
    leave(api, bob, room)

    assert member_list(api, alice, room, f"?at={token}") == {
        alice.user_id: "join",
        bob.user_id: "join",
    }
    assert member_list(api, alice, room)[bob.user_id] == "leave"


def test_a_user_who_left_sees_the_members_as_they_were_when_they_left(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    leave(api, bob, room)
    join(api, carol, room)

    assert member_list(api, bob, room) == {alice.user_id: "join", bob.user_id: "leave"}
    later = messages(api, alice, room, limit=1).body["start"]
    assert carol.user_id not in member_list(api, bob, room, f"?at={later}")


def test_members_of_a_room_never_joined_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, crowded_room: str
) -> None:
    stranger = api.register("dave")
    outsider = api.get(room_path(crowded_room, "members"), token=stranger.access_token)
    invitee = api.get(room_path(crowded_room, "members"), token=carol.access_token)

    assert outsider.status == invitee.status == 403
    assert outsider.errcode == invitee.errcode == "M_FORBIDDEN"


def test_joined_members_maps_joined_users_to_their_profiles(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    invite(api, alice, room, carol)

    response = api.get(room_path(room, "joined_members"), token=bob.access_token)

    assert response.status == 200
    assert response.body == {
        "joined": {
            alice.user_id: {"display_name": "alice"},
            bob.user_id: {"display_name": "bob"},
        }
    }


def test_joined_members_is_forbidden_to_non_members(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    leave(api, bob, room)
    invite(api, alice, room, carol)
    stranger = api.register("dave")

    for who in (bob, carol, stranger):
        response = api.get(room_path(room, "joined_members"), token=who.access_token)
        assert response.status == 403, who.localpart
        assert response.errcode == "M_FORBIDDEN"


def test_changing_power_so_bob_can_kick(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, room_version="12", preset="public_chat")
    join(api, bob, room)
    join(api, carol, room)
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    set_state(api, alice, room, "m.room.power_levels", {**levels, "users": {bob.user_id: 50}})

    membership_action(api, bob, room, "kick", carol)

    assert membership_of(api, alice, room, carol) == "leave"


def test_joined_members_needs_membership_even_in_a_world_readable_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = api.post(
        "createRoom",
        {
            "preset": "public_chat",
            "initial_state": [
                {
                    "type": "m.room.history_visibility",
                    "content": {"history_visibility": "world_readable"},
                }
            ],
        },
        token=alice.access_token,
    ).body["room_id"]
    response = api.get(f"rooms/{room}/joined_members", token=bob.access_token)
    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


@pytest.mark.parametrize(
    "state_key", ["notauser", "", "@nodomain", "#alias:localhost", "@bad name:localhost"]
)
def test_a_member_event_whose_state_key_is_not_a_user_id_is_refused(
    api: MatrixTestClient, alice: Persona, state_key: str
) -> None:
    """m.room.member's state_key is an mx-user-id: PUT /state with anything else is
    400 M_INVALID_PARAM (as Synapse answers), and no member event is stored."""
    room = create_room(api, alice)
    before = {key: e["event_id"] for key, e in state_map(api, alice, room).items()}

    response = set_state(
        api, alice, room, "m.room.member", {"membership": "invite"}, state_key, expect=400
    )

    assert response.errcode == "M_INVALID_PARAM"
    assert {key: e["event_id"] for key, e in state_map(api, alice, room).items()} == before
    members = api.get(room_path(room, "members"), token=alice.access_token).body["chunk"]
    assert [m["state_key"] for m in members] == [alice.user_id]


def test_create_room_refuses_an_initial_member_event_for_a_non_user(
    api: MatrixTestClient, alice: Persona
) -> None:
    rooms_before = api.get("joined_rooms", token=alice.access_token).body["joined_rooms"]
    item = {"type": "m.room.member", "state_key": "notauser", "content": {"membership": "invite"}}

    response = api.post("createRoom", {"initial_state": [item]}, token=alice.access_token)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    assert api.get("joined_rooms", token=alice.access_token).body["joined_rooms"] == rooms_before


def test_a_member_event_for_a_remote_user_id_is_still_accepted(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    """Only the shape is checked: an invite of a well-formed user ID on another server
    is up to the auth rules, as before (once that server has countersigned it)."""
    peers.add(RemoteServer("elsewhere.example"))
    room = create_room(api, alice)
    remote = "@carol:elsewhere.example"
    set_state(api, alice, room, "m.room.member", {"membership": "invite"}, remote)
    assert state_map(api, alice, room)[("m.room.member", remote)]["content"] == {
        "membership": "invite"
    }
