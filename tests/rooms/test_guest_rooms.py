"""Guests in rooms (Client-Server API, "Guest access"): they join only rooms whose
m.room.guest_access is can_join, leave when it stops being so, may read and send
through the module's endpoints only, and see history as any user does."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import (
    create_room,
    get_state,
    invite,
    join,
    messages,
    room_path,
    send,
    set_state,
)


@pytest.fixture(autouse=True)
def _guest_access_on(settings: Any) -> None:
    settings.ALLOW_GUEST_ACCESS = True


@pytest.fixture
def guest(api: MatrixTestClient) -> Persona:
    return api.register_guest()


def guest_room(api: MatrixTestClient, owner: Persona, **body: Any) -> str:
    """A public room whose guest access is can_join."""
    room = create_room(api, owner, preset="public_chat", **body)
    set_state(api, owner, room, "m.room.guest_access", {"guest_access": "can_join"})
    return room


def membership_of(api: MatrixTestClient, who: Persona, room: str, target: Persona) -> str:
    response = get_state(api, who, room, "m.room.member", target.user_id)
    return response.body["membership"] if response.status == 200 else "leave"


# --- Joining ---------------------------------------------------------------------------


def test_a_guest_joins_a_room_whose_guest_access_is_can_join(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)

    join(api, guest, room)

    assert membership_of(api, alice, room, guest) == "join"


def test_a_guest_joins_through_rooms_room_id_join_too(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)

    response = api.post(room_path(room, "join"), token=guest.access_token)

    assert response.status == 200, response.body
    assert response.body == {"room_id": room}


def test_a_guest_joins_by_alias(api: MatrixTestClient, alice: Persona, guest: Persona) -> None:
    room = guest_room(api, alice, room_alias_name="visitors")
    alias = "#visitors:" + alice.user_id.split(":", 1)[1]

    assert join(api, guest, alias).body == {"room_id": room}


@pytest.mark.parametrize("guest_access", ["forbidden", None])
def test_a_guest_cannot_join_a_room_that_does_not_allow_guests(
    api: MatrixTestClient, alice: Persona, guest: Persona, guest_access: str | None
) -> None:
    """ "Servers MUST only allow guest users to join rooms if the m.room.guest_access
    state event is present on the room, and has the guest_access value can_join";
    otherwise 403 M_FORBIDDEN (as Synapse answers)."""
    room = create_room(api, alice, preset="public_chat")
    content = {} if guest_access is None else {"guest_access": guest_access}
    set_state(api, alice, room, "m.room.guest_access", content)

    response = join(api, guest, room, expect=403)

    assert response.errcode == "M_FORBIDDEN"
    assert membership_of(api, alice, room, guest) == "leave"


def test_an_invited_guest_still_needs_can_join(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")
    set_state(api, alice, room, "m.room.guest_access", {"guest_access": "forbidden"})
    invite(api, alice, room, guest)

    assert join(api, guest, room, expect=403).errcode == "M_FORBIDDEN"


def test_an_invited_guest_joins_a_private_room_that_allows_guests(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    # private_chat sets guest_access can_join (createRoom's preset table).
    room = create_room(api, alice, preset="private_chat")
    invite(api, alice, room, guest)

    join(api, guest, room)

    assert membership_of(api, alice, room, guest) == "join"


def test_a_guest_cannot_join_a_room_this_server_knows_nothing_of(
    api: MatrixTestClient, guest: Persona
) -> None:
    """Only what this server knows of a room can show it lets guests in, as Synapse
    decides; no other server is asked."""
    response = join(api, guest, "!elsewhere:remote.example", expect=403)

    assert response.errcode == "M_FORBIDDEN"


def test_a_full_user_joins_whatever_the_guest_access(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")

    join(api, bob, room)


# --- Sending and reading ---------------------------------------------------------------


def test_a_joined_guest_sends_messages(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)

    send(api, guest, room, "sup")

    chunk = messages(api, alice, room, dir="b", limit=1).body["chunk"]
    assert [(e["sender"], e["content"]["body"]) for e in chunk] == [(guest.user_id, "sup")]


def test_a_guest_may_send_state_as_the_power_levels_allow(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    """PUT /state is on the module's list (v1.2): the auth rules decide, not the guest
    check."""
    room = guest_room(api, alice)
    join(api, guest, room)

    refused = set_state(api, guest, room, "m.room.topic", {"topic": "hi"}, expect=403)
    own_member = set_state(
        api,
        guest,
        room,
        "m.room.member",
        {"membership": "join", "displayname": "Visitor"},
        guest.user_id,
    )

    assert refused.errcode == "M_FORBIDDEN"
    assert own_member.status == 200


def test_a_guest_not_in_the_room_cannot_send(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)

    response = api.put(
        room_path(room, "send", "m.room.message", "t1"),
        {"msgtype": "m.text", "body": "sup"},
        token=guest.access_token,
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_a_guest_leaves(api: MatrixTestClient, alice: Persona, guest: Persona) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)

    response = api.post(room_path(room, "leave"), token=guest.access_token)

    assert response.status == 200
    assert membership_of(api, alice, room, guest) == "leave"


def test_a_guest_reads_through_the_modules_room_endpoints(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)
    event_id = send(api, alice, room, "hello")
    token = guest.access_token

    reads = [
        api.get(room_path(room, "state"), token=token),
        api.get(room_path(room, "state", "m.room.create", ""), token=token),
        api.get(room_path(room, "members"), token=token),
        api.get(room_path(room, "event", event_id), token=token),
        api.get(room_path(room, "context", event_id), token=token),
        api.get(room_path(room, "messages") + "?dir=b", token=token),
        api.get(room_path(room, "initialSync"), token=token),
        api.get(f"events?room_id={quote(room, safe='')}&timeout=0", token=token),
    ]

    assert [r.status for r in reads] == [200] * len(reads)


def test_a_guest_is_refused_the_global_initial_sync(api: MatrixTestClient, guest: Persona) -> None:
    """GET /initialSync is not in the guest access module's list."""
    response = api.get("initialSync", token=guest.access_token)

    assert response.status == 403
    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"


@pytest.mark.parametrize(
    ("method", "parts", "body"),
    [
        ("POST", ("invite",), {"user_id": "@someone:localhost"}),
        ("POST", ("kick",), {"user_id": "@someone:localhost"}),
        ("POST", ("ban",), {"user_id": "@someone:localhost"}),
        ("POST", ("forget",), {}),
        ("POST", ("upgrade",), {"new_version": "11"}),
        ("PUT", ("typing", "{user_id}"), {"typing": True}),
        ("POST", ("read_markers",), {}),
        ("GET", ("joined_members",), None),
        ("GET", ("aliases",), None),
        ("POST", ("report",), {"reason": "x"}),
    ],
)
def test_a_guest_is_refused_the_room_endpoints_the_module_does_not_list(
    api: MatrixTestClient,
    alice: Persona,
    guest: Persona,
    method: str,
    parts: tuple[str, ...],
    body: Any,
) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)
    path = room_path(room, *(p.format(user_id=guest.user_id) for p in parts))

    response = api.request(method, path, body, token=guest.access_token)

    assert response.status == 403, response.body
    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"


def test_a_guest_cannot_knock(api: MatrixTestClient, alice: Persona, guest: Persona) -> None:
    room = create_room(api, alice, preset="private_chat", room_version="11")
    set_state(api, alice, room, "m.room.join_rules", {"join_rule": "knock"})

    response = api.post(f"knock/{quote(room, safe='')}", {}, token=guest.access_token)

    assert response.status == 403
    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"


# --- History visibility ----------------------------------------------------------------


def test_a_guest_outside_a_world_readable_room_reads_it(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    set_state(
        api, alice, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    send(api, alice, room, "for everyone")

    history = messages(api, guest, room, dir="b")
    state = api.get(room_path(room, "state"), token=guest.access_token)

    assert history.status == 200
    assert "for everyone" in [e["content"].get("body") for e in history.body["chunk"]]
    assert state.status == 200


def test_a_guest_outside_a_shared_room_reads_nothing(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)
    send(api, alice, room, "members only")

    history = messages(api, guest, room, dir="b")

    assert history.status == 403
    assert history.errcode == "M_FORBIDDEN"


def test_a_joined_guest_syncs_the_room(
    api: MatrixTestClient, alice: Persona, guest: Persona
) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)
    send(api, alice, room, "post_join")

    synced = api.get("sync?timeout=0", token=guest.access_token)

    assert synced.status == 200
    timeline = synced.body["rooms"]["join"][room]["timeline"]["events"]
    assert timeline[-1]["content"]["body"] == "post_join"


# --- Guest access revoked --------------------------------------------------------------


def test_guests_leave_when_guest_access_is_revoked(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    guest: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """ "If the m.room.guest_access event is changed to stop this from being the case,
    the server MUST set those users' m.room.member state to leave.\""""
    room = guest_room(api, alice)
    join(api, guest, room)
    join(api, bob, room)
    invited = api.register_guest()
    invite(api, alice, room, invited)

    with django_capture_on_commit_callbacks(execute=True):
        set_state(api, alice, room, "m.room.guest_access", {"guest_access": "forbidden"})

    assert membership_of(api, alice, room, guest) == "leave"
    assert membership_of(api, alice, room, invited) == "leave"
    assert membership_of(api, alice, room, bob) == "join"
    leave = get_state(api, alice, room, "m.room.member", guest.user_id).body
    assert leave == {"membership": "leave"}


def test_guests_stay_while_guest_access_stays_can_join(
    api: MatrixTestClient, alice: Persona, guest: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)

    with django_capture_on_commit_callbacks(execute=True):
        set_state(api, alice, room, "m.room.name", {"name": "Still open"})
        set_state(api, alice, room, "m.room.guest_access", {"guest_access": "can_join"})

    assert membership_of(api, alice, room, guest) == "join"


def test_an_upgraded_guest_keeps_its_rooms_through_a_revocation(
    api: MatrixTestClient, alice: Persona, guest: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    room = guest_room(api, alice)
    join(api, guest, room)
    body = {"username": guest.localpart, "password": "pw pw pw pw"}
    first = api.post("register", {**body, "guest_access_token": guest.access_token})
    done = api.post(
        "register", {"auth": {"type": "m.login.dummy", "session": first.body["session"]}}
    )
    assert done.status == 200, done.body

    with django_capture_on_commit_callbacks(execute=True):
        set_state(api, alice, room, "m.room.guest_access", {"guest_access": "forbidden"})

    assert membership_of(api, alice, room, guest) == "join"
    joined = api.get("joined_rooms", token=done.body["access_token"])
    assert joined.body == {"joined_rooms": [room]}


def test_only_an_end_of_can_join_sends_the_worker_to_remove_guests(
    api: MatrixTestClient,
    alice: Persona,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A new public room's guest_access forbidden, or a second forbidden, follows no
    can_join: no guest can be in the room, and no task is queued."""
    queued: list[str] = []
    monkeypatch.setattr("rooms.signals.remove_guests.delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        room = create_room(api, alice, preset="public_chat")
        set_state(api, alice, room, "m.room.guest_access", {"guest_access": "forbidden"})
    assert queued == []

    with django_capture_on_commit_callbacks(execute=True):
        set_state(api, alice, room, "m.room.guest_access", {"guest_access": "can_join"})
        set_state(api, alice, room, "m.room.guest_access", {"guest_access": "forbidden"})
    assert queued == [room]
