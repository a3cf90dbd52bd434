"""GET /_matrix/client/v1/mutual_rooms: the joined rooms two users share."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rooms.api import rooms as rooms_api
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, join, leave

MUTUAL = "/_matrix/client/v1/mutual_rooms"


def mutual(api: MatrixTestClient, who: Persona, **params: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.get(f"{MUTUAL}?{query}", token=who.access_token)


def test_lists_only_rooms_both_have_joined(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    shared = create_room(api, alice, preset="public_chat")
    join(api, bob, shared)
    create_room(api, alice)  # alice's alone
    left = create_room(api, alice, preset="public_chat")
    join(api, bob, left)
    leave(api, bob, left)
    create_room(api, bob)  # bob's alone

    response = mutual(api, alice, user_id=bob.user_id)

    assert response.status == 200
    assert response.body == {"joined": [shared], "count": 1}


def test_an_unknown_user_shares_nothing(api: MatrixTestClient, alice: Persona) -> None:
    create_room(api, alice, preset="public_chat")

    response = mutual(api, alice, user_id="@nobody:example.org")

    assert response.status == 200
    assert response.body == {"joined": [], "count": 0}


def test_batches_follow_next_batch(
    api: MatrixTestClient, alice: Persona, bob: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rooms_api, "MUTUAL_ROOMS_BATCH", 2)
    shared = []
    for _ in range(5):
        room = create_room(api, alice, preset="public_chat")
        join(api, bob, room)
        shared.append(room)

    seen: list[str] = []
    page = mutual(api, alice, user_id=bob.user_id).body
    pages = 1
    while "next_batch" in page:
        assert page["count"] == 5
        assert re.fullmatch(r"[0-9A-Za-z._~-]+", page["next_batch"])  # an opaque identifier
        seen += page["joined"]
        page = mutual(api, alice, user_id=bob.user_id, **{"from": page["next_batch"]}).body
        pages += 1
    seen += page["joined"]

    assert pages == 3
    assert sorted(seen) == sorted(shared)
    assert len(seen) == 5


def test_asking_about_yourself_is_400_invalid_param(api: MatrixTestClient, alice: Persona) -> None:
    response = mutual(api, alice, user_id=alice.user_id)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"


def test_a_malformed_user_id_is_400_invalid_param(api: MatrixTestClient, alice: Persona) -> None:
    response = mutual(api, alice, user_id="bob")

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"


def test_a_missing_user_id_is_400_missing_param(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(MUTUAL, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


def test_a_malformed_from_token_is_400_invalid_param(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    for token in ["garbage", "", "!!!"]:
        response = mutual(api, alice, user_id=bob.user_id, **{"from": token})

        assert response.status == 400, token
        assert response.errcode == "M_INVALID_PARAM"


def test_needs_an_access_token(api: MatrixTestClient, bob: Persona) -> None:
    response = api.get(f"{MUTUAL}?user_id={bob.user_id}")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"
