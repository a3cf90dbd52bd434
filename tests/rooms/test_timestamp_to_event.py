"""GET /rooms/{roomId}/timestamp_to_event (Client-Server API, room_event_by_timestamp)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, room_path, send

CLIENT_V1 = "/_matrix/client/v1"


def lookup(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> Response:
    path = f"{CLIENT_V1}/{room_path(room, 'timestamp_to_event')}?{urlencode(params)}"
    return api.get(path, token=who.access_token)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The send path's clock: events get origin_server_ts = clock[0]."""
    now = [1_700_000_000_000]
    monkeypatch.setattr("rooms.services.events.now_ms", lambda: now[0])
    return now


@pytest.fixture
def timeline(
    api: MatrixTestClient, alice: Persona, clock: list[int]
) -> tuple[str, dict[int, str]]:
    """A room whose messages are sent at ts 2000, 3000 and 4000 (after its creation at 1000)."""
    clock[0] = 1000
    room = create_room(api, alice, preset="private_chat")
    sent = {}
    for ts in (2000, 3000, 4000):
        clock[0] = ts
        sent[ts] = send(api, alice, room, f"at {ts}")
    return room, sent


def test_forwards_finds_the_first_event_at_or_after_ts(
    api: MatrixTestClient, alice: Persona, timeline: tuple[str, dict[int, str]]
) -> None:
    room, sent = timeline

    between = lookup(api, alice, room, ts=2500, dir="f")
    exact = lookup(api, alice, room, ts=3000, dir="f")

    assert between.status == 200
    assert between.body == {"event_id": sent[3000], "origin_server_ts": 3000}
    assert exact.body["event_id"] == sent[3000]


def test_backwards_finds_the_last_event_at_or_before_ts(
    api: MatrixTestClient, alice: Persona, timeline: tuple[str, dict[int, str]]
) -> None:
    room, sent = timeline

    between = lookup(api, alice, room, ts=3500, dir="b")
    far = lookup(api, alice, room, ts=10_000, dir="b")

    assert between.body == {"event_id": sent[3000], "origin_server_ts": 3000}
    assert far.body["event_id"] == sent[4000]


def test_nothing_in_that_direction_is_not_found(
    api: MatrixTestClient, alice: Persona, timeline: tuple[str, dict[int, str]]
) -> None:
    room, _ = timeline

    after_all = lookup(api, alice, room, ts=5000, dir="f")
    before_all = lookup(api, alice, room, ts=500, dir="b")

    assert (after_all.status, after_all.errcode) == (404, "M_NOT_FOUND")
    assert (before_all.status, before_all.errcode) == (404, "M_NOT_FOUND")


def test_parameters_are_checked(
    api: MatrixTestClient, alice: Persona, bob: Persona, timeline: tuple[str, dict[int, str]]
) -> None:
    room, _ = timeline

    no_ts = api.get(
        f"{CLIENT_V1}/{room_path(room, 'timestamp_to_event')}?dir=f", token=alice.access_token
    )
    no_dir = api.get(
        f"{CLIENT_V1}/{room_path(room, 'timestamp_to_event')}?ts=1", token=alice.access_token
    )
    bad_ts = lookup(api, alice, room, ts="soon", dir="f")
    bad_dir = lookup(api, alice, room, ts=1, dir="x")
    outsider = lookup(api, bob, room, ts=1, dir="f")

    assert (no_ts.status, no_ts.errcode) == (400, "M_MISSING_PARAM")
    assert (no_dir.status, no_dir.errcode) == (400, "M_MISSING_PARAM")
    assert (bad_ts.status, bad_ts.errcode) == (400, "M_INVALID_PARAM")
    assert (bad_dir.status, bad_dir.errcode) == (400, "M_INVALID_PARAM")
    assert (outsider.status, outsider.errcode) == (403, "M_FORBIDDEN")
