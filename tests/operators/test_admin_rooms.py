"""The Synapse admin API for rooms: lists and details, members, state, messages,
blocking, deletion (a resumable job), make_room_admin, event reports."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AccountData
from operators.models import AdminJob, AuditEntry
from operators.services import jobs
from operators.tasks import resume_room_deletions
from rooms.models import Event, EventReport, Membership, Room, RoomAlias
from tests.conftest import MatrixTestClient, Persona
from tests.operators.conftest import ADMIN_V1, ADMIN_V2, q
from tests.rooms.helpers import create_room, join, room_path, send


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    """Alice's public room "Lobby" (#lobby), Bob joined, two messages."""
    room_id = create_room(api, alice, name="Lobby", room_alias_name="lobby", preset="public_chat")
    join(api, bob, room_id)
    send(api, alice, room_id, "first")
    send(api, bob, room_id, "second")
    return room_id


def get(api: MatrixTestClient, who: Persona, path: str) -> Any:
    response = api.get(path, token=who.access_token)
    assert response.status == 200, response.body
    return response.body


# --- who may ask ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/rooms"),
        ("GET", "/rooms/{room}"),
        ("GET", "/rooms/{room}/members"),
        ("GET", "/rooms/{room}/state"),
        ("GET", "/rooms/{room}/messages"),
        ("GET", "/rooms/{room}/block"),
        ("PUT", "/rooms/{room}/block"),
        ("GET", "/rooms/{room}/forward_extremities"),
        ("POST", "/rooms/{room}/make_room_admin"),
        ("GET", "/event_reports"),
        ("GET", "/event_reports/1"),
        ("DELETE", "/event_reports/1"),
    ],
)
def test_every_endpoint_is_for_server_admins_only(
    api: MatrixTestClient, alice: Persona, room: str, method: str, path: str
) -> None:
    response = api.request(
        method, ADMIN_V1 + path.format(room=q(room)), {"block": True}, token=alice.access_token
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert not AuditEntry.objects.exists()


def test_deletion_endpoints_are_for_server_admins_only(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    for method, path in [
        ("DELETE", f"{ADMIN_V2}/rooms/{q(room)}"),
        ("GET", f"{ADMIN_V2}/rooms/{q(room)}/delete_status"),
        ("GET", f"{ADMIN_V2}/rooms/delete_status/abc"),
    ]:
        response = api.request(method, path, {}, token=alice.access_token)
        assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert Room.objects.filter(room_id=room).exists()
    assert not AdminJob.objects.exists()


def test_without_a_token_the_answer_is_401(api: MatrixTestClient) -> None:
    response = api.get(f"{ADMIN_V1}/rooms")

    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


# --- reading rooms ----------------------------------------------------------------------


def test_the_room_list_has_synapses_fields(
    api: MatrixTestClient, admin: Persona, alice: Persona, room: str
) -> None:
    body = get(api, admin, f"{ADMIN_V1}/rooms")

    assert body["offset"] == 0
    assert body["total_rooms"] == 1
    assert "next_batch" not in body
    (entry,) = body["rooms"]
    assert entry == {
        "room_id": room,
        "name": "Lobby",
        "canonical_alias": "#lobby:localhost:8008",
        "joined_members": 2,
        "joined_local_members": 2,
        "version": Room.objects.get(room_id=room).room_version,
        "creator": alice.user_id,
        "encryption": None,
        "federatable": True,
        "public": False,
        "join_rules": "public",
        "guest_access": "forbidden",
        "history_visibility": "shared",
        "state_events": entry["state_events"],
        "room_type": None,
    }
    assert entry["state_events"] >= 8


def test_the_room_list_pages_orders_and_searches(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    small = create_room(api, alice, name="Alpha")
    big = create_room(api, alice, name="Beta", preset="public_chat")
    join(api, bob, big)
    create_room(api, bob, name="Gamma")

    first = get(api, admin, f"{ADMIN_V1}/rooms?limit=2")
    second = get(api, admin, f"{ADMIN_V1}/rooms?limit=2&from=2")
    by_size = get(api, admin, f"{ADMIN_V1}/rooms?order_by=joined_members")
    reversed_names = get(api, admin, f"{ADMIN_V1}/rooms?dir=b")
    search = get(api, admin, f"{ADMIN_V1}/rooms?search_term=alp")

    assert [r["name"] for r in first["rooms"]] == ["Alpha", "Beta"]
    assert first["next_batch"] == 2
    assert first["total_rooms"] == 3
    assert [r["name"] for r in second["rooms"]] == ["Gamma"]
    assert second["prev_batch"] == 0
    assert "next_batch" not in second
    assert by_size["rooms"][0]["room_id"] == big
    assert [r["name"] for r in reversed_names["rooms"]] == ["Gamma", "Beta", "Alpha"]
    assert [r["room_id"] for r in search["rooms"]] == [small]
    assert search["total_rooms"] == 1


@pytest.mark.parametrize(
    "query",
    ["order_by=bogus", "dir=x", "from=-1", "limit=ten", "search_term=", "public_rooms=maybe"],
)
def test_bad_list_parameters_are_400(api: MatrixTestClient, admin: Persona, query: str) -> None:
    response = api.get(f"{ADMIN_V1}/rooms?{query}", token=admin.access_token)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_room_details_members_and_state(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona, room: str
) -> None:
    api.put(
        room_path(room, "state", "m.room.topic", ""), {"topic": "Hi"}, token=alice.access_token
    )

    details = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}")
    members = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/members")
    state = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/state")
    names = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/state?type=m.room.name")

    assert details["name"] == "Lobby"
    assert details["topic"] == "Hi"
    assert details["avatar"] is None
    assert details["joined_local_devices"] == 2
    assert details["forgotten"] is False
    assert details["tombstoned"] is False
    assert details["replacement_room"] is None
    assert members == {"members": sorted([alice.user_id, bob.user_id]), "total": 2}
    types = {(e["type"], e["state_key"]) for e in state["state"]}
    assert ("m.room.create", "") in types
    assert ("m.room.member", bob.user_id) in types
    assert [e["content"] for e in names["state"]] == [{"name": "Lobby"}]


def test_unknown_rooms_are_404(api: MatrixTestClient, admin: Persona) -> None:
    unknown = q("!nowhere:localhost:8008")
    for path in ["", "/members", "/state", "/messages", "/forward_extremities"]:
        response = api.get(f"{ADMIN_V1}/rooms/{unknown}{path}", token=admin.access_token)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND"), path


def test_messages_show_an_admin_everything_whatever_the_history_visibility(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    room = create_room(
        api,
        alice,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            }
        ],
    )
    send(api, alice, room, "secret")
    send(api, alice, room, "more")

    page = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/messages?dir=b&limit=1")
    rest = get(
        api,
        admin,
        f"{ADMIN_V1}/rooms/{q(room)}/messages?dir=b&limit=10&from={page['end']}"
        '&filter={"types":["m.room.message"]}',
    )

    assert [e["content"]["body"] for e in page["chunk"]] == ["more"]
    assert [e["content"]["body"] for e in rest["chunk"]] == ["secret"]
    member_view = api.get(room_path(room, "messages") + "?dir=b", token=admin.access_token)
    assert member_view.status == 403


def test_messages_with_a_bad_token_or_filter_are_400(
    api: MatrixTestClient, admin: Persona, room: str
) -> None:
    for query in ["from=nonsense", "filter=notjson", "dir=up"]:
        response = api.get(
            f"{ADMIN_V1}/rooms/{q(room)}/messages?{query}", token=admin.access_token
        )
        assert response.status == 400, query


def test_forward_extremities(api: MatrixTestClient, admin: Persona, room: str) -> None:
    body = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/forward_extremities")

    last = Event.objects.filter(room__room_id=room).order_by("-stream_ordering").first()
    assert last is not None
    assert body["count"] == 1
    assert body["results"][0]["event_id"] == last.event_id
    assert body["results"][0]["depth"] == last.depth
    assert isinstance(body["results"][0]["state_group"], int)


# --- blocking ---------------------------------------------------------------------------


def test_a_blocked_room_cannot_be_joined_and_unblocking_lets_users_in(
    api: MatrixTestClient, admin: Persona, carol: Persona, room: str
) -> None:
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/block") == {"block": False}

    put = api.put(f"{ADMIN_V1}/rooms/{q(room)}/block", {"block": True}, token=admin.access_token)

    assert (put.status, put.body) == (200, {"block": True})
    status = get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/block")
    assert status == {"block": True, "user_id": admin.user_id}
    refused = join(api, carol, room, expect=403)
    assert refused.errcode == "M_FORBIDDEN"
    assert not Membership.objects.filter(room__room_id=room, user_id=carol.user_id).exists()
    assert AuditEntry.objects.filter(action="room.block", target=room).count() == 1

    api.put(f"{ADMIN_V1}/rooms/{q(room)}/block", {"block": False}, token=admin.access_token)

    join(api, carol, room)
    assert AuditEntry.objects.filter(action="room.unblock", target=room).count() == 1


def test_a_blocked_room_refuses_invites_of_local_users(
    api: MatrixTestClient, admin: Persona, alice: Persona, carol: Persona
) -> None:
    room = create_room(api, alice)
    api.put(f"{ADMIN_V1}/rooms/{q(room)}/block", {"block": True}, token=admin.access_token)

    response = api.post(
        room_path(room, "invite"), {"user_id": carol.user_id}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_an_unknown_room_can_be_blocked_ahead(api: MatrixTestClient, admin: Persona) -> None:
    unknown = "!future:elsewhere.example"

    api.put(f"{ADMIN_V1}/rooms/{q(unknown)}/block", {"block": True}, token=admin.access_token)

    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(unknown)}/block")["block"] is True


@pytest.mark.parametrize("body", [{}, {"block": "yes"}, {"block": 1}])
def test_block_needs_a_boolean(
    api: MatrixTestClient, admin: Persona, room: str, body: dict[str, Any]
) -> None:
    response = api.put(f"{ADMIN_V1}/rooms/{q(room)}/block", body, token=admin.access_token)

    assert (response.status, response.errcode) == (400, "M_BAD_JSON")
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/block") == {"block": False}


# --- deletion ---------------------------------------------------------------------------


def delete(api: MatrixTestClient, admin: Persona, room: str, capture: Any, **body: Any) -> str:
    with capture(execute=True):
        response = api.delete(f"{ADMIN_V2}/rooms/{q(room)}", body, token=admin.access_token)
    assert response.status == 200, response.body
    return str(response.body["delete_id"])


def test_deleting_a_room_moves_its_members_blocks_and_purges_it(
    api: MatrixTestClient,
    admin: Persona,
    alice: Persona,
    bob: Persona,
    carol: Persona,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    api.put(
        f"/_matrix/client/v3/user/{q(bob.user_id)}/rooms/{q(room)}/tags/u.work",
        {},
        token=bob.access_token,
    )

    delete_id = delete(
        api,
        admin,
        room,
        django_capture_on_commit_callbacks,
        new_room_user_id=admin.user_id,
        room_name="Closed",
        message="This room broke the rules.",
        block=True,
    )

    status = get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")
    assert status["status"] == "complete"
    assert status["room_id"] == room
    result = status["shutdown_room"]
    assert sorted(result["kicked_users"]) == sorted([alice.user_id, bob.user_id])
    assert result["failed_to_kick_users"] == []
    assert result["local_aliases"] == ["#lobby:localhost:8008"]
    new_room = result["new_room_id"]
    # The room and everything stored for it is gone; it stays blocked.
    assert not Room.objects.filter(room_id=room).exists()
    assert not Event.objects.filter(room__room_id=room).exists()
    assert not AccountData.objects.filter(room_id=room).exists()
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/block")["block"] is True
    # The members are in the new room, where the message explains; the alias moved.
    members = get(api, admin, f"{ADMIN_V1}/rooms/{q(new_room)}/members")["members"]
    assert set(members) == {admin.user_id, alice.user_id, bob.user_id}
    messages = get(api, admin, f"{ADMIN_V1}/rooms/{q(new_room)}/messages?dir=b")["chunk"]
    bodies = [e["content"].get("body") for e in messages if e["type"] == "m.room.message"]
    assert bodies == ["This room broke the rules."]
    assert RoomAlias.objects.get(alias="#lobby:localhost:8008").room.room_id == new_room
    joined = api.get("/_matrix/client/v3/joined_rooms", token=alice.access_token).body
    assert joined == {"joined_rooms": [new_room]}
    # Nobody may speak there but its creator.
    refused = api.put(
        room_path(new_room, "send", "m.room.message", "t1"),
        {"msgtype": "m.text", "body": "why?"},
        token=alice.access_token,
    )
    assert refused.status == 403
    # By room ID too; and the trail.
    by_room = get(api, admin, f"{ADMIN_V2}/rooms/{q(room)}/delete_status")
    assert [r["delete_id"] for r in by_room["results"]] == [delete_id]
    actions = set(AuditEntry.objects.filter(target=room).values_list("action", flat=True))
    assert {"room.delete", "room.delete.complete"} <= actions


def test_deleting_without_a_new_room_or_purge_leaves_the_room_empty(
    api: MatrixTestClient,
    admin: Persona,
    alice: Persona,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    delete_id = delete(api, admin, room, django_capture_on_commit_callbacks, purge=False)

    status = get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")
    assert status["status"] == "complete"
    assert status["shutdown_room"]["new_room_id"] is None
    assert Room.objects.filter(room_id=room).exists()
    assert not Membership.objects.filter(room__room_id=room, membership="join").exists()
    assert not RoomAlias.objects.filter(alias="#lobby:localhost:8008").exists()
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}/block")["block"] is False
    assert api.get("joined_rooms", token=alice.access_token).body == {"joined_rooms": []}


def test_an_interrupted_deletion_is_resumed_by_the_sweep(
    api: MatrixTestClient,
    admin: Persona,
    alice: Persona,
    bob: Persona,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # The job was started, and Alice was moved out, when the worker died: the row is
    # left ``active`` with its progress, Bob still in the room.
    job = jobs.create(
        "room.delete",
        room,
        admin.user_id,
        {"new_room_user_id": None, "block": True, "purge": True, "force_purge": False},
    )
    jobs.start(job)
    api.post(room_path(room, "leave"), token=alice.access_token)
    jobs.report(job, kicked_users=[alice.user_id], failed_to_kick_users=[], local_aliases=[])

    with django_capture_on_commit_callbacks(execute=True):
        resumed = resume_room_deletions.delay().get()

    assert resumed == 1
    job.refresh_from_db()
    assert job.status == AdminJob.COMPLETE
    assert job.progress["kicked_users"] == [alice.user_id, bob.user_id]
    assert not Room.objects.filter(room_id=room).exists()
    assert AuditEntry.objects.filter(action="room.delete.complete", target=room).exists()
    # A second sweep finds nothing left to do.
    assert resume_room_deletions.delay().get() == 0


def test_the_purge_waits_until_the_members_clients_heard_they_left(
    api: MatrixTestClient,
    admin: Persona,
    bob: Persona,
    room: str,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from operators.services import rooms as room_actions

    monkeypatch.setattr(room_actions, "PURGE_GRACE_MS", 30_000)
    before = api.get("sync", token=bob.access_token).body
    assert room in before["rooms"]["join"]

    delete_id = delete(api, admin, room, django_capture_on_commit_callbacks)

    status = get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")
    assert status["status"] == "active"
    assert bob.user_id in status["shutdown_room"]["kicked_users"]
    after = api.get(f"sync?since={before['next_batch']}", token=bob.access_token).body
    assert room in after["rooms"]["leave"]
    # The sweep comes by before the grace is over, and again after it.
    with django_capture_on_commit_callbacks(execute=True):
        resume_room_deletions.delay().get()
    assert Room.objects.filter(room_id=room).exists()
    later = room_actions.now_ms() + 31_000
    monkeypatch.setattr(room_actions, "now_ms", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):
        resume_room_deletions.delay().get()

    assert get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")["status"] == "complete"
    assert not Room.objects.filter(room_id=room).exists()


def test_the_sweep_leaves_a_running_deletion_alone(
    api: MatrixTestClient, admin: Persona, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from operators.services import rooms as room_actions

    monkeypatch.setattr(room_actions, "STALE_AFTER_MS", 60_000)
    job = jobs.create("room.delete", room, admin.user_id, {"purge": True})
    jobs.start(job)
    room_actions._step(job)

    assert resume_room_deletions.delay().get() == 0
    assert Room.objects.filter(room_id=room).exists()


def test_a_deletion_that_cannot_finish_is_reported_failed(
    api: MatrixTestClient,
    admin: Persona,
    room: str,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rooms.services import purge

    def broken(room_id: str) -> bool:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(purge, "do_purge_room", broken)

    delete_id = delete(api, admin, room, django_capture_on_commit_callbacks)

    status = get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")
    assert status["status"] == "failed"
    assert "disk on fire" in status["error"]
    assert AuditEntry.objects.filter(action="room.delete.failed", target=room).exists()


def test_deleting_an_unknown_room_is_404_unless_it_is_only_blocked(
    api: MatrixTestClient, admin: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    unknown = "!unknown:localhost:8008"
    response = api.delete(f"{ADMIN_V2}/rooms/{q(unknown)}", {}, token=admin.access_token)
    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
    assert not AdminJob.objects.exists()

    delete_id = delete(api, admin, unknown, django_capture_on_commit_callbacks, block=True)

    assert get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")["status"] == "complete"
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(unknown)}/block")["block"] is True


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"block": "yes"}, "M_BAD_JSON"),
        ({"purge": 1}, "M_BAD_JSON"),
        ({"new_room_user_id": "@someone:elsewhere.example"}, "M_INVALID_PARAM"),
        ({"room_name": 5}, "M_BAD_JSON"),
    ],
)
def test_bad_deletion_requests_are_400_and_start_nothing(
    api: MatrixTestClient, admin: Persona, room: str, body: dict[str, Any], errcode: str
) -> None:
    response = api.delete(f"{ADMIN_V2}/rooms/{q(room)}", body, token=admin.access_token)

    assert (response.status, response.errcode) == (400, errcode)
    assert not AdminJob.objects.exists()
    assert Room.objects.filter(room_id=room).exists()


def test_a_deletion_needs_a_body(api: MatrixTestClient, admin: Persona, room: str) -> None:
    response = api.delete(f"{ADMIN_V2}/rooms/{q(room)}", token=admin.access_token)

    assert response.status == 400
    assert not AdminJob.objects.exists()


def test_a_second_deletion_while_one_runs_is_refused(
    api: MatrixTestClient, admin: Persona, room: str
) -> None:
    jobs.create("room.delete", room, admin.user_id, {})

    response = api.delete(f"{ADMIN_V2}/rooms/{q(room)}", {}, token=admin.access_token)

    assert response.status == 400
    assert AdminJob.objects.count() == 1


def test_unknown_deletions_are_404(api: MatrixTestClient, admin: Persona, room: str) -> None:
    by_id = api.get(f"{ADMIN_V2}/rooms/delete_status/nope", token=admin.access_token)
    by_room = api.get(f"{ADMIN_V2}/rooms/{q(room)}/delete_status", token=admin.access_token)

    assert (by_id.status, by_id.errcode) == (404, "M_NOT_FOUND")
    assert (by_room.status, by_room.errcode) == (404, "M_NOT_FOUND")


# --- make_room_admin --------------------------------------------------------------------


def power_of(api: MatrixTestClient, who: Persona, room: str, user_id: str) -> Any:
    levels = api.get(room_path(room, "state", "m.room.power_levels", ""), token=who.access_token)
    return levels.body.get("users", {}).get(user_id)


def test_make_room_admin_joins_a_public_room_and_raises_the_user(
    api: MatrixTestClient, admin: Persona, alice: Persona, carol: Persona, room: str
) -> None:
    response = api.post(
        f"{ADMIN_V1}/rooms/{q(room)}/make_room_admin",
        {"user_id": carol.user_id},
        token=admin.access_token,
    )

    assert response.status == 200, response.body
    assert Membership.objects.get(room__room_id=room, user_id=carol.user_id).membership == "join"
    assert power_of(api, alice, room, carol.user_id) == 100
    assert AuditEntry.objects.filter(action="room.make_admin", target=room).exists()


def test_make_room_admin_invites_into_a_private_room_by_alias(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    room = create_room(api, alice, room_alias_name="private")

    response = api.post(
        f"{ADMIN_V1}/rooms/{q('#private:localhost:8008')}/make_room_admin",
        token=admin.access_token,
    )

    assert response.status == 200, response.body
    row = Membership.objects.get(room__room_id=room, user_id=admin.user_id)
    assert row.membership == "invite"
    assert power_of(api, alice, room, admin.user_id) == 100


def test_make_room_admin_errors(
    api: MatrixTestClient, admin: Persona, alice: Persona, room: str
) -> None:
    unknown = api.post(
        f"{ADMIN_V1}/rooms/{q('!nope:localhost:8008')}/make_room_admin", token=admin.access_token
    )
    remote = api.post(
        f"{ADMIN_V1}/rooms/{q(room)}/make_room_admin",
        {"user_id": "@x:elsewhere.example"},
        token=admin.access_token,
    )
    empty = create_room(api, alice)
    api.post(room_path(empty, "leave"), token=alice.access_token)
    nobody = api.post(f"{ADMIN_V1}/rooms/{q(empty)}/make_room_admin", token=admin.access_token)

    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    assert nobody.status == 400


def test_admins_may_publish_rooms_through_the_directory(
    api: MatrixTestClient, admin: Persona, room: str
) -> None:
    response = api.put(
        f"directory/list/room/{q(room)}", {"visibility": "public"}, token=admin.access_token
    )

    assert response.status == 200
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(room)}")["public"] is True


# --- event reports ----------------------------------------------------------------------


def report(api: MatrixTestClient, who: Persona, room: str, event_id: str, reason: str) -> int:
    response = api.post(
        room_path(room, "report", event_id),
        {"reason": reason, "score": -50},
        token=who.access_token,
    )
    assert response.status == 200, response.body
    return EventReport.objects.order_by("-id").values_list("pk", flat=True).first() or 0


def test_event_reports_list_filter_page_show_and_delete(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona, room: str
) -> None:
    spam = send(api, bob, room, "spam")
    rude = send(api, alice, room, "rude")
    first = report(api, alice, room, spam, "spam")
    second = report(api, bob, room, rude, "rude")
    api.post(room_path(room, "report"), {"reason": "whole room"}, token=alice.access_token)

    listed = get(api, admin, f"{ADMIN_V1}/event_reports")
    page = get(api, admin, f"{ADMIN_V1}/event_reports?limit=1&dir=f")
    by_alice = get(api, admin, f"{ADMIN_V1}/event_reports?user_id={q(alice.user_id)}")
    against_bob = get(
        api, admin, f"{ADMIN_V1}/event_reports?event_sender_user_id={q(bob.user_id)}"
    )
    detail = get(api, admin, f"{ADMIN_V1}/event_reports/{first}")

    # Reports of events only, newest first.
    assert listed["total"] == 2
    assert [r["id"] for r in listed["event_reports"]] == [second, first]
    entry = listed["event_reports"][1]
    assert entry["event_id"] == spam
    assert entry["user_id"] == alice.user_id
    assert entry["sender"] == bob.user_id
    assert entry["reason"] == "spam"
    assert entry["score"] == -50
    assert entry["name"] == "Lobby"
    assert entry["canonical_alias"] == "#lobby:localhost:8008"
    assert isinstance(entry["received_ts"], int)
    assert [r["id"] for r in page["event_reports"]] == [first]
    assert page["next_token"] == 1
    assert [r["id"] for r in by_alice["event_reports"]] == [first]
    assert [r["id"] for r in against_bob["event_reports"]] == [first]
    assert detail["event_json"]["type"] == "m.room.message"
    assert detail["event_json"]["content"]["body"] == "spam"

    gone = api.delete(f"{ADMIN_V1}/event_reports/{first}", token=admin.access_token)

    assert gone.status == 200
    assert not EventReport.objects.filter(pk=first).exists()
    assert AuditEntry.objects.filter(action="report.delete", target=str(first)).exists()
    again = api.delete(f"{ADMIN_V1}/event_reports/{first}", token=admin.access_token)
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")


def test_event_report_errors(api: MatrixTestClient, admin: Persona) -> None:
    missing = api.get(f"{ADMIN_V1}/event_reports/12345", token=admin.access_token)
    bad = api.get(f"{ADMIN_V1}/event_reports/abc", token=admin.access_token)
    bad_dir = api.get(f"{ADMIN_V1}/event_reports?dir=sideways", token=admin.access_token)

    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    assert (bad_dir.status, bad_dir.errcode) == (400, "M_INVALID_PARAM")


def test_a_deletion_started_in_the_portal_is_logged_as_the_portals(
    api: MatrixTestClient, admin: Persona, room: str, django_capture_on_commit_callbacks: Any
) -> None:
    from operators.services import rooms as room_actions

    with django_capture_on_commit_callbacks(execute=True):
        job = room_actions.delete_room(room, actor=admin.user_id, via="portal", ip="10.0.0.1")

    entries = AuditEntry.objects.filter(target=room).values_list("action", "via")
    assert set(entries) == {("room.delete", "portal"), ("room.delete.complete", "portal")}
    job.refresh_from_db()
    assert job.status == AdminJob.COMPLETE


def test_the_new_room_may_belong_to_a_user_who_never_registered(
    api: MatrixTestClient,
    admin: Persona,
    bob: Persona,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    moderator = "@moderation:localhost:8008"

    delete_id = delete(
        api, admin, room, django_capture_on_commit_callbacks, new_room_user_id=moderator
    )

    status = get(api, admin, f"{ADMIN_V2}/rooms/delete_status/{delete_id}")
    assert status["status"] == "complete", status
    new_room = status["shutdown_room"]["new_room_id"]
    assert get(api, admin, f"{ADMIN_V1}/rooms/{q(new_room)}")["creator"] == moderator
    assert bob.user_id in get(api, admin, f"{ADMIN_V1}/rooms/{q(new_room)}/members")["members"]
