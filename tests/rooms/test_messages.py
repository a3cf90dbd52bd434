"""GET /rooms/{roomId}/messages and GET /rooms/{roomId}/event/{eventId}, with history
visibility (Client-Server API, "Syncing", "Getting events for a room", "History
visibility")."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from rooms import storage
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import (
    bodies,
    create_room,
    invite,
    join,
    leave,
    messages,
    room_path,
    send,
    set_state,
)


@pytest.fixture(autouse=True, params=["sql", "orm"])
def batches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: pages without a filter are read with hand-written SQL, pages
    with one through the ORM; both must give the same rows."""
    if request.param == "orm":
        monkeypatch.setattr(storage, "timeline_batch_sql", storage.timeline_batch_orm)


def page(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> dict[str, Any]:
    response = messages(api, who, room, **params)
    assert response.status == 200, response.body
    return response.body


def all_bodies(api: MatrixTestClient, who: Persona, room: str) -> list[str]:
    """Every message body ``who`` may see, oldest first."""
    return bodies(page(api, who, room, dir="f", limit=100)["chunk"])


def can_get_event(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> bool:
    response = api.get(room_path(room, "event", event_id), token=who.access_token)
    assert response.status in (200, 404), response.body
    if response.status == 404:
        assert response.errcode == "M_NOT_FOUND"
    return response.status == 200


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona) -> str:
    """A public room with messages m0..m4 from alice."""
    room = create_room(api, alice, preset="public_chat")
    for n in range(5):
        send(api, alice, room, f"m{n}")
    return room


# -- pagination ------------------------------------------------------------------------


def test_backwards_from_the_end_is_newest_first(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    body = page(api, alice, room, dir="b", limit=3)

    assert bodies(body["chunk"]) == ["m4", "m3", "m2"]
    assert body["start"]
    assert body["end"]


def test_forwards_from_the_start_is_oldest_first(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    body = page(api, alice, room, dir="f", limit=3)

    assert [e["type"] for e in body["chunk"]] == [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
    ]


def test_paging_backwards_with_end_tokens_visits_every_event_once(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    seen: list[dict[str, Any]] = []
    token = None
    for _ in range(20):
        params: dict[str, Any] = {"dir": "b", "limit": 2}
        if token:
            params["from"] = token
        body = page(api, alice, room, **params)
        if token:
            assert body["start"] == token
        seen.extend(body["chunk"])
        token = body.get("end")
        if token is None:
            break

    assert bodies(seen) == ["m4", "m3", "m2", "m1", "m0"]
    assert seen[-1]["type"] == "m.room.create"
    assert len({e["event_id"] for e in seen}) == len(seen)


def test_paging_forwards_from_a_backwards_token(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    newest_two = page(api, alice, room, dir="b", limit=2)
    middle = newest_two["end"]

    older = page(api, alice, room, dir="b", limit=1, **{"from": middle})
    newer = page(api, alice, room, dir="f", limit=10, **{"from": middle})

    assert bodies(older["chunk"]) == ["m2"]
    assert bodies(newer["chunk"]) == ["m3", "m4"]
    assert "end" not in newer


def test_from_the_current_end_forwards_is_empty_until_something_new(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    now = page(api, alice, room, dir="b", limit=1)["start"]

    empty = page(api, alice, room, dir="f", **{"from": now})
    send(api, alice, room, "m5")
    fresh = page(api, alice, room, dir="f", **{"from": now})

    assert empty["chunk"] == []
    assert "end" not in empty
    assert bodies(fresh["chunk"]) == ["m5"]


def test_to_stops_the_page(api: MatrixTestClient, alice: Persona, room: str) -> None:
    after_m2 = page(api, alice, room, dir="b", limit=2)["end"]
    end = page(api, alice, room, dir="b", limit=1)["start"]

    backwards = page(api, alice, room, dir="b", limit=10, to=after_m2)
    forwards = page(api, alice, room, dir="f", limit=10, to=end, **{"from": after_m2})

    assert bodies(backwards["chunk"]) == ["m4", "m3"]
    assert "end" not in backwards
    assert bodies(forwards["chunk"]) == ["m3", "m4"]


def test_limit_defaults_to_10(api: MatrixTestClient, alice: Persona, room: str) -> None:
    for n in range(5, 15):
        send(api, alice, room, f"m{n}")

    assert len(page(api, alice, room, dir="b")["chunk"]) == 10


@pytest.mark.parametrize(
    "params",
    [{"dir": "sideways"}, {"dir": "b", "limit": "ten"}, {"dir": "b", "from": "garbage"}],
)
def test_bad_parameters_are_m_invalid_param(
    api: MatrixTestClient, alice: Persona, room: str, params: dict[str, str]
) -> None:
    response = messages(api, alice, room, **params)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"


def test_messages_of_an_unknown_room_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = messages(api, alice, f"!nowhere:{settings.SERVER_NAME}", dir="b")

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


# -- filters ---------------------------------------------------------------------------


@pytest.fixture
def chatty_room(api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona) -> str:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    join(api, carol, room)
    send(api, alice, room, "from alice")
    send(api, bob, room, "from bob")
    send(api, bob, room, {"x": 1}, event_type="org.example.custom")
    send(api, carol, room, "from carol")
    return room


def test_filter_types_and_not_types(
    api: MatrixTestClient, alice: Persona, chatty_room: str
) -> None:
    only_custom = page(api, alice, chatty_room, dir="b", filter={"types": ["org.example.custom"]})
    wildcard = page(api, alice, chatty_room, dir="b", filter={"types": ["org.example.*"]})
    no_messages = page(
        api, alice, chatty_room, dir="b", limit=3, filter={"not_types": ["m.room.message"]}
    )

    assert [e["type"] for e in only_custom["chunk"]] == ["org.example.custom"]
    assert [e["type"] for e in wildcard["chunk"]] == ["org.example.custom"]
    # A star inside a pattern is a wildcard too; the dot stays a dot.
    inner = page(
        api, alice, chatty_room, dir="b", filter={"types": ["org.*.custom", "m.r*.create"]}
    )
    assert [e["type"] for e in inner["chunk"]] == ["org.example.custom", "m.room.create"]
    assert [e["type"] for e in no_messages["chunk"]] == [
        "org.example.custom",
        "m.room.member",
        "m.room.member",
    ]


def test_filter_senders_and_not_senders(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, chatty_room: str
) -> None:
    messages_only = {"types": ["m.room.message"]}
    bobs = page(
        api, alice, chatty_room, dir="f", filter={**messages_only, "senders": [bob.user_id]}
    )
    not_bobs = page(
        api, alice, chatty_room, dir="f", filter={**messages_only, "not_senders": [bob.user_id]}
    )

    assert bodies(bobs["chunk"]) == ["from bob"]
    assert bodies(not_bobs["chunk"]) == ["from alice", "from carol"]


def test_the_filter_limit_caps_the_page(
    api: MatrixTestClient, alice: Persona, chatty_room: str
) -> None:
    body = page(api, alice, chatty_room, dir="b", limit=10, filter={"limit": 2})

    assert len(body["chunk"]) == 2


def test_lazy_load_members_returns_the_senders_member_events(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, chatty_room: str
) -> None:
    body = page(
        api,
        alice,
        chatty_room,
        dir="b",
        limit=2,
        filter={"lazy_load_members": True},
    )

    senders = {e["sender"] for e in body["chunk"]}
    assert senders == {bob.user_id, carol.user_id}
    members = {e["state_key"]: e for e in body["state"]}
    assert set(members) == senders
    for event in body["state"]:
        assert event["type"] == "m.room.member"
        assert event["content"]["membership"] == "join"


def test_without_lazy_loading_there_is_no_state(
    api: MatrixTestClient, alice: Persona, chatty_room: str
) -> None:
    body = page(api, alice, chatty_room, dir="b", limit=2)

    assert "state" not in body or body["state"] == []


def test_a_filter_that_is_not_an_object_is_refused(
    api: MatrixTestClient, alice: Persona, chatty_room: str
) -> None:
    response = messages(api, alice, chatty_room, dir="b", filter="[1]")

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"


# -- history visibility ----------------------------------------------------------------


def room_with_visibility(api: MatrixTestClient, alice: Persona, visibility: str) -> str:
    return create_room(
        api,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": visibility}}
        ],
    )


@pytest.mark.parametrize(
    ("visibility", "seen_by_bob"),
    [
        ("world_readable", ["before invite", "while invited", "after join"]),
        ("shared", ["before invite", "while invited", "after join"]),
        ("invited", ["while invited", "after join"]),
        ("joined", ["after join"]),
    ],
)
def test_what_a_user_who_joins_later_sees(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    visibility: str,
    seen_by_bob: list[str],
) -> None:
    room = room_with_visibility(api, alice, visibility)
    before = send(api, alice, room, "before invite")
    invite(api, alice, room, bob)
    send(api, alice, room, "while invited")
    join(api, bob, room)
    send(api, alice, room, "after join")

    assert all_bodies(api, bob, room) == seen_by_bob
    assert can_get_event(api, bob, room, before) is ("before invite" in seen_by_bob)
    assert all_bodies(api, alice, room) == ["before invite", "while invited", "after join"]


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
def test_a_non_member_cannot_read_a_room_that_is_not_world_readable(
    api: MatrixTestClient, alice: Persona, bob: Persona, visibility: str
) -> None:
    room = room_with_visibility(api, alice, visibility)
    event_id = send(api, alice, room, "members only")

    response = messages(api, bob, room, dir="b")

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert can_get_event(api, bob, room, event_id) is False


def test_a_non_member_can_read_a_world_readable_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = room_with_visibility(api, alice, "world_readable")
    event_id = send(api, alice, room, "for everyone")

    assert all_bodies(api, bob, room) == ["for everyone"]
    assert can_get_event(api, bob, room, event_id) is True


def test_visibility_is_judged_by_the_state_at_each_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = room_with_visibility(api, alice, "world_readable")
    send(api, alice, room, "public era")
    change = set_state(
        api, alice, room, "m.room.history_visibility", {"history_visibility": "joined"}
    ).body["event_id"]
    private = send(api, alice, room, "private era")

    # No longer world readable: a non-member cannot paginate at all.
    assert messages(api, bob, room, dir="b").status == 403
    join(api, bob, room)
    send(api, alice, room, "after join")

    assert all_bodies(api, bob, room) == ["public era", "after join"]
    assert can_get_event(api, bob, room, private) is False
    # The change itself is visible: the visibility before it allowed it.
    assert can_get_event(api, bob, room, change) is True


@pytest.mark.parametrize("visibility", ["world_readable", "shared", "invited", "joined"])
def test_a_user_who_left_does_not_see_what_was_sent_after(
    api: MatrixTestClient, alice: Persona, bob: Persona, visibility: str
) -> None:
    room = room_with_visibility(api, alice, visibility)
    join(api, bob, room)
    send(api, alice, room, "while bob was here")
    leave(api, bob, room)
    after = send(api, alice, room, "after bob left")

    if visibility == "world_readable":
        assert all_bodies(api, bob, room) == ["while bob was here", "after bob left"]
        assert can_get_event(api, bob, room, after) is True
    else:
        assert all_bodies(api, bob, room) == ["while bob was here"]
        assert can_get_event(api, bob, room, after) is False


def test_a_kicked_user_does_not_see_what_was_sent_after(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = room_with_visibility(api, alice, "shared")
    join(api, bob, room)
    send(api, alice, room, "before the kick")
    api.post(room_path(room, "kick"), {"user_id": bob.user_id}, token=alice.access_token)
    send(api, alice, room, "after the kick")

    assert all_bodies(api, bob, room) == ["before the kick"]


def test_a_user_sees_their_own_invite_and_kick(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = room_with_visibility(api, alice, "joined")
    invite(api, alice, room, bob)
    api.post(room_path(room, "kick"), {"user_id": bob.user_id}, token=alice.access_token)

    chunk = page(api, bob, room, dir="f", limit=100)["chunk"]

    memberships = [e["content"]["membership"] for e in chunk if e.get("state_key") == bob.user_id]
    assert memberships == ["invite", "leave"]
    assert bodies(chunk) == []


def test_get_event_answers_a_visible_event(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    event_id = send(api, alice, room, "look")

    response = api.get(room_path(room, "event", event_id), token=bob.access_token)

    assert response.status == 200
    assert response.body["event_id"] == event_id
    assert response.body["content"]["body"] == "look"


def test_get_event_of_an_unknown_event_or_another_rooms_event_is_not_found(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    elsewhere = create_room(api, alice)
    other = send(api, alice, elsewhere, "elsewhere")

    assert can_get_event(api, alice, room, f"$nope:{settings.SERVER_NAME}") is False
    assert can_get_event(api, alice, room, other) is False


# -- the hot path ----------------------------------------------------------------------


@pytest.mark.parametrize("limit", [5, 50])
def test_a_page_takes_a_bounded_number_of_queries_whatever_its_size(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_assert_max_num_queries: Any,
    limit: int,
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    for n in range(60):
        send(api, alice if n % 2 else bob, room, f"m{n}")

    # 7: the token, the room, the viewer's membership, their ignored list, the page, the
    # senders' member events, one grouped relations query. (The end of the room's
    # history is where the page starts: no stream position is read for ``start``.)
    with django_assert_max_num_queries(7):
        response = messages(
            api, bob, room, dir="b", limit=limit, filter={"lazy_load_members": True}
        )

    assert len(response.body["chunk"]) == limit
