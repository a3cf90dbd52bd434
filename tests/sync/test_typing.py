"""Typing notifications (Client-Server API, "Typing Notifications").

PUT /typing/{userId} sets one's own typing state in a joined room; /sync carries an
m.typing event with the current typists whenever a room's typing set changed since the
token. A typist whose timeout passed is gone at once for readers, and the sync hub's
once-a-second sweep moves the stream so that long-polls hear about it.
"""

from __future__ import annotations

from typing import Any

import pytest

from rooms.services import typing as typing_service
from sync import hub
from sync.tokens import SyncToken
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, leave, send
from tests.sync.ephemeral_helpers import ephemeral, set_typing, shared_room, sync


def typists(body: dict[str, Any], room: str) -> list[str] | None:
    """The user IDs of the room's m.typing event in a sync body, None without one."""
    events = ephemeral(body, room, "m.typing")
    assert len(events) <= 1
    return events[0]["content"]["user_ids"] if events else None


class FakeClock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, start_ms: int) -> None:
        self.now = start_ms
        for module in ("rooms.services.typing", "rooms.sync_providers"):
            monkeypatch.setattr(f"{module}.now_ms", lambda: self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch, 1_700_000_000_000)


def test_typing_appears_in_the_next_incremental_sync(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]

    assert set_typing(api, alice, room).status == 200

    body = sync(api, bob, token)
    assert typists(body, room) == [alice.user_id]
    # Nothing changed since: no m.typing event, and the room is not listed at all.
    assert typists(sync(api, bob, body["next_batch"]), room) is None


def test_stopping_sends_an_empty_list(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = shared_room(api, alice, bob)
    set_typing(api, alice, room)
    token = sync(api, bob)["next_batch"]

    assert set_typing(api, alice, room, False, timeout=None).status == 200

    assert typists(sync(api, bob, token), room) == []


def test_the_list_holds_every_current_typist(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    set_typing(api, alice, room)
    token = sync(api, alice)["next_batch"]

    set_typing(api, bob, room)

    assert typists(sync(api, alice, token), room) == sorted([alice.user_id, bob.user_id])


def test_initial_sync_lists_typists_only_when_someone_types(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    assert typists(sync(api, bob), room) is None

    set_typing(api, alice, room)

    assert typists(sync(api, bob), room) == [alice.user_id]


def test_keep_alive_does_not_move_the_stream(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    set_typing(api, alice, room)
    token = sync(api, bob)["next_batch"]

    set_typing(api, alice, room)

    body = sync(api, bob, token)
    assert typists(body, room) is None
    assert SyncToken.parse(body["next_batch"]).typing == SyncToken.parse(token).typing


def test_stopping_when_not_typing_changes_nothing(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]

    assert set_typing(api, alice, room, False).status == 200

    assert (
        SyncToken.parse(sync(api, bob, token)["next_batch"]).typing
        == SyncToken.parse(token).typing
    )


def test_expired_typist_disappears_once_swept(
    api: MatrixTestClient, alice: Persona, bob: Persona, clock: FakeClock
) -> None:
    room = shared_room(api, alice, bob)
    set_typing(api, alice, room, timeout=5000)
    token = sync(api, bob)["next_batch"]

    clock.now += 5001
    # Before the sweep, readers already leave the expired typist out.
    assert typists(sync(api, bob), room) is None
    assert typing_service.do_expire_typing() == 1

    assert typists(sync(api, bob, token), room) == []
    # A second sweep finds nothing and moves nothing.
    assert typing_service.do_expire_typing() == 0


def test_the_sync_hub_runs_the_expiry_sweep() -> None:
    assert typing_service.do_expire_typing in hub._poll_hooks


def test_timeout_is_capped(
    api: MatrixTestClient, alice: Persona, bob: Persona, clock: FakeClock
) -> None:
    room = shared_room(api, alice, bob)
    set_typing(api, alice, room, timeout=10 * 60 * 1000)

    clock.now += typing_service.MAX_TYPING_TIMEOUT_MS + 1

    assert typists(sync(api, bob), room) is None


def test_typing_wakes_the_room_after_commit(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = shared_room(api, alice, bob)
    woken: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        "streams.notifier.notify_stream_moved",
        lambda stream, position, room_id=None, user_ids=None: woken.append((stream, room_id)),
    )

    with django_capture_on_commit_callbacks(execute=True):
        set_typing(api, alice, room)

    assert woken == [("typing", room)]


def test_typing_for_someone_else_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)

    response = set_typing(api, alice, room, user_id=bob.user_id)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_non_members_cannot_type(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)

    response = set_typing(api, bob, room)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_former_members_cannot_type(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = shared_room(api, alice, bob)
    leave(api, bob, room)

    assert set_typing(api, bob, room).status == 403


@pytest.mark.parametrize(
    "body",
    [{}, {"typing": "yes"}, {"typing": True, "timeout": "30000"}, {"typing": True, "timeout": -1}],
)
def test_malformed_bodies_are_refused(
    api: MatrixTestClient, alice: Persona, body: dict[str, Any]
) -> None:
    room = create_room(api, alice)

    response = api.put(f"rooms/{room}/typing/{alice.user_id}", body, token=alice.access_token)

    assert response.status == 400
    assert response.errcode in ("M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM")


def test_typing_only_reaches_rooms_one_is_joined_to(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    other = create_room(api, alice)
    send(api, alice, other)
    token = sync(api, bob)["next_batch"]

    set_typing(api, alice, other)
    set_typing(api, alice, room)

    body = sync(api, bob, token)
    assert other not in body.get("rooms", {}).get("join", {})
    assert typists(body, room) == [alice.user_id]


def test_typing_query_count_does_not_grow_with_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona, django_assert_max_num_queries: Any
) -> None:
    rooms = [shared_room(api, alice, bob) for _ in range(4)]
    token = sync(api, bob)["next_batch"]
    for room in rooms:
        set_typing(api, alice, room)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        body = sync(api, bob, token)
    assert all(typists(body, room) == [alice.user_id] for room in rooms)
    typing_queries = [q for q in queries.captured_queries if "rooms_typing" in q["sql"]]
    assert len(typing_queries) == 1
