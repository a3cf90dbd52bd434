"""Membership follows the account: profile changes and deactivation reach the rooms."""

from typing import Any

from rooms import tasks
from rooms.services import membership
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import leave, state_map
from tests.sync.helpers import joined, sync


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


def _set_profile(api: MatrixTestClient, who: Persona, key: str, value: str, capture: Any) -> None:
    """PUT /profile/{userId}/{key}, running what it queues on commit (the Celery task,
    eager in the tests, and what that task queues in turn)."""
    with capture(execute=True):
        response = api.put(f"profile/{who.user_id}/{key}", {key: value}, token=who.access_token)
    assert response.status == 200, response.body


def test_a_new_displayname_reaches_every_joined_room_and_sync(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    rooms = [_public_room_with(api, alice, bob) for _ in range(2)]
    before = {room: state_map(api, alice, room)[("m.room.member", bob.user_id)] for room in rooms}
    since = sync(api, alice)["next_batch"]

    _set_profile(api, bob, "displayname", "Bobby", django_capture_on_commit_callbacks)

    changes = joined(sync(api, alice, since=since, timeout=0))
    for room in rooms:
        member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
        assert member["event_id"] != before[room]["event_id"]
        assert (member["sender"], member["content"]) == (
            bob.user_id,
            {"membership": "join", "displayname": "Bobby"},
        )
        assert member["unsigned"]["prev_content"] == before[room]["content"]
        timeline = changes[room]["timeline"]["events"]
        assert [(e["event_id"], e["content"]) for e in timeline] == [
            (member["event_id"], member["content"])
        ]


def test_a_new_avatar_reaches_the_member_events_keeping_the_rest(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = api.post("createRoom", {"preset": "public_chat"}, token=alice.access_token)
    room_id = room.body["room_id"]
    body = {"reason": "hi", "org.example.badge": "gold"}
    assert api.post(f"join/{room_id}", body, token=bob.access_token).status == 200

    _set_profile(
        api, bob, "avatar_url", "mxc://example.org/bob", django_capture_on_commit_callbacks
    )

    member = state_map(api, alice, room_id)[("m.room.member", bob.user_id)]
    # The join's reason was for that join; what else it carried stays.
    assert member["content"] == {
        "membership": "join",
        "displayname": "bob",
        "avatar_url": "mxc://example.org/bob",
        "org.example.badge": "gold",
    }


def test_a_room_the_user_left_gets_no_member_event(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    kept = _public_room_with(api, alice, bob)
    left = _public_room_with(api, alice, bob)
    leave(api, bob, left)
    left_member = state_map(api, alice, left)[("m.room.member", bob.user_id)]["event_id"]

    _set_profile(api, bob, "displayname", "Bobby", django_capture_on_commit_callbacks)

    assert state_map(api, alice, left)[("m.room.member", bob.user_id)]["event_id"] == left_member
    kept_member = state_map(api, alice, kept)[("m.room.member", bob.user_id)]
    assert kept_member["content"]["displayname"] == "Bobby"


def test_a_room_refusing_the_new_member_event_does_not_stop_the_others(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    crowded = api.post("createRoom", {"preset": "public_chat"}, token=alice.access_token)
    crowded_id = crowded.body["room_id"]
    # A join just under the 64 KiB event limit: with an avatar_url added it is over.
    body = {"org.example.padding": "x" * 64_800}
    assert api.post(f"join/{crowded_id}", body, token=bob.access_token).status == 200
    crowded_member = state_map(api, alice, crowded_id)[("m.room.member", bob.user_id)]
    other = _public_room_with(api, alice, bob)

    url = "mxc://example.org/" + "a" * 2000
    _set_profile(api, bob, "avatar_url", url, django_capture_on_commit_callbacks)

    after = state_map(api, alice, crowded_id)[("m.room.member", bob.user_id)]
    assert after["event_id"] == crowded_member["event_id"]
    assert state_map(api, alice, other)[("m.room.member", bob.user_id)]["content"] == {
        "membership": "join",
        "displayname": "bob",
        "avatar_url": url,
    }


def test_the_new_member_events_are_not_rate_limited(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    rooms = [_public_room_with(api, alice, bob) for _ in range(3)]
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {**settings.RATELIMITS, "message": (0.0001, 1)}
    # Bob's one message empties his bucket: a client send now is refused...
    first = api.put(
        f"rooms/{rooms[0]}/send/m.room.message/t1", {"body": "hi"}, token=bob.access_token
    )
    assert first.status == 200, first.body
    refused = api.put(
        f"rooms/{rooms[0]}/send/m.room.message/t2", {"body": "hi"}, token=bob.access_token
    )
    assert refused.errcode == "M_LIMIT_EXCEEDED"

    # ...but the member events the server makes for a profile change are not limited.
    _set_profile(api, bob, "displayname", "Bobby", django_capture_on_commit_callbacks)

    for room in rooms:
        member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
        assert member["content"]["displayname"] == "Bobby"


def test_a_profile_change_reaches_many_rooms_a_batch_at_a_time(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    rooms = [_public_room_with(api, alice, bob) for _ in range(5)]
    monkeypatch.setattr(tasks, "PROFILE_ROOMS_PER_BATCH", 2)
    runs: list[int] = []
    refresh = membership.do_refresh_member_profiles

    def recording(user_id: str, **kwargs: Any) -> membership.ProfileRefresh:
        done = refresh(user_id, **kwargs)
        runs.append(done.changed)
        return done

    monkeypatch.setattr(membership, "do_refresh_member_profiles", recording)

    # The PUT answers once the profile is stored; the member events follow from the
    # worker, two rooms per run, each run queueing the next (eager in the tests).
    _set_profile(api, bob, "displayname", "Bobby", django_capture_on_commit_callbacks)

    assert runs == [2, 2, 1]
    for room in rooms:
        member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
        assert member["content"] == {"membership": "join", "displayname": "Bobby"}


def test_a_refresh_resumes_after_its_last_room_and_never_repeats_a_change(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    rooms = [_public_room_with(api, alice, bob) for _ in range(3)]
    # The profile stored, its member events not sent (the on-commit task is not run).
    response = api.put(
        f"profile/{bob.user_id}/displayname", {"displayname": "Bobby"}, token=bob.access_token
    )
    assert response.status == 200

    first = membership.do_refresh_member_profiles(bob.user_id, limit=2)
    assert first.changed == 2
    assert first.resume_after is not None
    rest = membership.do_refresh_member_profiles(bob.user_id, after_room=first.resume_after)
    assert (rest.changed, rest.resume_after) == (1, None)
    # A second run over every room (another profile change's, say) finds them done.
    again = membership.do_refresh_member_profiles(bob.user_id)
    assert (again.changed, again.resume_after) == (0, None)
    for room in rooms:
        member = state_map(api, alice, room)[("m.room.member", bob.user_id)]
        assert member["content"]["displayname"] == "Bobby"


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
