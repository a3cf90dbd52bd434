"""Membership follows the account: profile changes and deactivation reach the rooms."""

from typing import Any

from tests.conftest import MatrixTestClient, Persona


def _public_room_with(api: MatrixTestClient, owner: Persona, member: Persona) -> str:
    room = api.post("createRoom", {"preset": "public_chat"}, token=owner.access_token)
    assert room.status == 200, room.body
    room_id: str = room.body["room_id"]
    assert api.post(f"join/{room_id}", token=member.access_token).status == 200
    return room_id


def test_a_new_displayname_updates_the_member_event_in_joined_rooms(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room_id = _public_room_with(api, alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.put(
            f"profile/{bob.user_id}/displayname", {"displayname": "Bobby"}, token=bob.access_token
        )
    assert response.status == 200
    member = api.get(
        f"rooms/{room_id}/state/m.room.member/{bob.user_id}", token=alice.access_token
    )
    assert member.body == {"membership": "join", "displayname": "Bobby"}


def test_an_unchanged_profile_sends_no_member_event(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room_id = _public_room_with(api, alice, bob)
    before = api.get(f"rooms/{room_id}/messages?dir=b&limit=50", token=alice.access_token).body
    with django_capture_on_commit_callbacks(execute=True):
        api.put(
            f"profile/{bob.user_id}/displayname", {"displayname": "bob"}, token=bob.access_token
        )
    after = api.get(f"rooms/{room_id}/messages?dir=b&limit=50", token=alice.access_token).body
    assert len(after["chunk"]) == len(before["chunk"])


def test_a_deactivated_user_leaves_every_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room_id = _public_room_with(api, alice, bob)
    invited = api.post("createRoom", {"invite": [bob.user_id]}, token=alice.access_token)
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "bob"},
        "password": bob.password,
    }
    response = api.post("account/deactivate", {"auth": auth}, token=bob.access_token)
    assert response.status == 200, response.body
    for rid in (room_id, invited.body["room_id"]):
        member = api.get(
            f"rooms/{rid}/state/m.room.member/{bob.user_id}", token=alice.access_token
        )
        assert member.body["membership"] == "leave"
    assert api.get(f"rooms/{room_id}/joined_members", token=alice.access_token).body[
        "joined"
    ].keys() == {alice.user_id}
