"""Filters (Client-Server API, "Filtering": POST/GET /user/{userId}/filter)."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Filter
from tests.conftest import MatrixTestClient, Persona

FILTER = {
    "event_fields": ["type", "content", "sender"],
    "event_format": "client",
    "presence": {"not_senders": ["@spam:example.org"]},
    "account_data": {"types": ["m.*"], "limit": 5},
    "room": {
        "rooms": ["!a:example.org"],
        "include_leave": False,
        "state": {"types": ["m.room.*"], "lazy_load_members": True},
        "timeline": {"limit": 10, "types": ["m.room.message"], "contains_url": False},
        "ephemeral": {"not_types": ["m.typing"]},
        "account_data": {"not_types": ["*"]},
    },
}


def create(api: MatrixTestClient, persona: Persona, definition: Any) -> Any:
    return api.post(f"user/{persona.user_id}/filter", definition, token=persona.access_token)


def test_create_and_get_a_filter(api: MatrixTestClient, alice: Persona) -> None:
    response = create(api, alice, FILTER)

    assert response.status == 200
    filter_id = response.body["filter_id"]
    assert isinstance(filter_id, str)
    got = api.get(f"user/{alice.user_id}/filter/{filter_id}", token=alice.access_token)
    assert got.status == 200
    assert got.body == FILTER


def test_an_empty_filter_is_valid(api: MatrixTestClient, alice: Persona) -> None:
    response = create(api, alice, {})

    assert response.status == 200
    assert (
        api.get(
            f"user/{alice.user_id}/filter/{response.body['filter_id']}", token=alice.access_token
        ).body
        == {}
    )


def test_valid_room_and_user_ids_are_accepted(api: MatrixTestClient, alice: Persona) -> None:
    definition = {
        "presence": {"senders": ["@Old.Style!:example.org"]},
        "room": {
            "rooms": ["!abc:example.org", "!v12HashLikeId"],
            "not_rooms": ["!def:example.org"],
            "timeline": {"senders": [alice.user_id], "not_rooms": ["!ghi:example.org"]},
        },
    }

    response = create(api, alice, definition)

    assert response.status == 200, response.body


def test_each_filter_gets_its_own_id(api: MatrixTestClient, alice: Persona) -> None:
    ids = [
        create(api, alice, {"room": {"timeline": {"limit": n}}}).body["filter_id"]
        for n in range(3)
    ]

    assert len(set(ids)) == 3
    for n, filter_id in enumerate(ids):
        got = api.get(f"user/{alice.user_id}/filter/{filter_id}", token=alice.access_token)
        assert got.body == {"room": {"timeline": {"limit": n}}}


@pytest.mark.parametrize(
    "definition",
    [
        {"event_fields": "type"},
        {"event_fields": [1]},
        {"event_format": "xml"},
        {"presence": []},
        {"presence": {"types": "m.presence"}},
        {"account_data": {"limit": -1}},
        {"account_data": {"limit": "10"}},
        {"account_data": {"limit": True}},
        {"room": "all"},
        {"room": {"rooms": "!a:b"}},
        {"room": {"include_leave": "yes"}},
        {"room": {"timeline": {"limit": 1.5}}},
        {"room": {"state": {"lazy_load_members": 1}}},
        {"room": {"ephemeral": {"not_rooms": [None]}}},
        # sytest "Check creating invalid filters returns 4xx": IDs of the wrong kind.
        {"room": {"timeline": {"rooms": ["not_a_room_id"]}}},
        {"room": {"timeline": {"senders": ["not_a_sender_id"]}}},
        {"room": {"state": {"not_senders": ["@no-domain"]}}},
        {"room": {"ephemeral": {"not_rooms": ["#alias:example.org"]}}},
        {"room": {"rooms": ["not_a_room_id"]}},
        {"room": {"not_rooms": ["@alice:example.org"]}},
        {"presence": {"senders": ["alice"]}},
        {"account_data": {"not_senders": ["@alice\n:example.org"]}},
    ],
)
def test_a_badly_shaped_filter_is_bad_json(
    api: MatrixTestClient, alice: Persona, definition: dict[str, Any]
) -> None:
    response = create(api, alice, definition)

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert not Filter.objects.exists()


def test_a_filter_must_be_an_object(api: MatrixTestClient, alice: Persona) -> None:
    response = api.request(
        "POST", f"user/{alice.user_id}/filter", raw=b"[]", token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"


@pytest.mark.parametrize("filter_id", ["999", "abc", "-1"])
def test_an_unknown_filter_is_not_found(
    api: MatrixTestClient, alice: Persona, filter_id: str
) -> None:
    create(api, alice, {})

    response = api.get(f"user/{alice.user_id}/filter/{filter_id}", token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_filters_are_per_user(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    alices = create(api, alice, {"room": {"timeline": {"limit": 1}}}).body["filter_id"]

    bobs_own = api.get(f"user/{bob.user_id}/filter/{alices}", token=bob.access_token)
    read = api.get(f"user/{alice.user_id}/filter/{alices}", token=bob.access_token)
    write = api.post(f"user/{alice.user_id}/filter", {}, token=bob.access_token)

    assert (bobs_own.status, bobs_own.errcode) == (404, "M_NOT_FOUND")
    assert (read.status, read.errcode) == (403, "M_FORBIDDEN")
    assert (write.status, write.errcode) == (403, "M_FORBIDDEN")
    assert Filter.objects.filter(user__localpart="bob").count() == 0


def test_filters_need_a_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(f"user/{alice.user_id}/filter", {})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_null_filter_fields_are_refused_not_stored(api: MatrixTestClient, alice: Persona) -> None:
    for body in (
        {"room": {"account_data": None}},
        {"room": {"timeline": {"rooms": None}}},
        {"presence": None},
    ):
        response = api.post(f"user/{alice.user_id}/filter", body, token=alice.access_token)
        assert response.status == 400, body
        assert response.errcode == "M_BAD_JSON"
