"""Client config (Client-Server API, "Client Config": global and per-room account data)."""

from __future__ import annotations

import pytest

from accounts.models import AccountData
from tests.conftest import MatrixTestClient, Persona

ROOM = "!abcdefg:example.org"


def global_path(persona: Persona, data_type: str) -> str:
    return f"user/{persona.user_id}/account_data/{data_type}"


def room_path(persona: Persona, data_type: str, room_id: str = ROOM) -> str:
    return f"user/{persona.user_id}/rooms/{room_id}/account_data/{data_type}"


def test_set_and_get_global_account_data(api: MatrixTestClient, alice: Persona) -> None:
    content = {"theme": "dark", "nested": {"list": [1, 2]}}

    response = api.put(global_path(alice, "org.example.prefs"), content, token=alice.access_token)

    assert response.status == 200
    assert response.body == {}
    got = api.get(global_path(alice, "org.example.prefs"), token=alice.access_token)
    assert got.status == 200
    assert got.body == content


def test_setting_again_replaces_the_content(api: MatrixTestClient, alice: Persona) -> None:
    api.put(global_path(alice, "org.example.prefs"), {"a": 1}, token=alice.access_token)

    api.put(global_path(alice, "org.example.prefs"), {"b": 2}, token=alice.access_token)

    got = api.get(global_path(alice, "org.example.prefs"), token=alice.access_token)
    assert got.body == {"b": 2}
    assert AccountData.objects.filter(type="org.example.prefs").count() == 1


def test_an_empty_object_is_valid_content(api: MatrixTestClient, alice: Persona) -> None:
    assert (
        api.put(global_path(alice, "m.ignored_user_list"), {}, token=alice.access_token).status
        == 200
    )

    assert api.get(global_path(alice, "m.ignored_user_list"), token=alice.access_token).body == {}


def test_unset_account_data_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(global_path(alice, "org.example.none"), token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_set_and_get_room_account_data(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(
        room_path(alice, "m.tag"), {"tags": {"u.work": {}}}, token=alice.access_token
    )

    assert response.status == 200
    assert api.get(room_path(alice, "m.tag"), token=alice.access_token).body == {
        "tags": {"u.work": {}}
    }


def test_v12_room_ids_without_a_domain_are_accepted(api: MatrixTestClient, alice: Persona) -> None:
    room = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"

    assert (
        api.put(room_path(alice, "org.example.x", room), {"a": 1}, token=alice.access_token).status
        == 200
    )


def test_room_and_global_account_data_are_apart(api: MatrixTestClient, alice: Persona) -> None:
    api.put(room_path(alice, "org.example.x"), {"where": "room"}, token=alice.access_token)
    api.put(
        room_path(alice, "org.example.x", "!other:example.org"),
        {"where": "other"},
        token=alice.access_token,
    )

    assert api.get(global_path(alice, "org.example.x"), token=alice.access_token).status == 404
    assert api.get(room_path(alice, "org.example.x"), token=alice.access_token).body == {
        "where": "room"
    }


@pytest.mark.parametrize("data_type", ["m.fully_read", "m.push_rules"])
def test_server_managed_types_cannot_be_set(
    api: MatrixTestClient, alice: Persona, data_type: str
) -> None:
    for path in (global_path(alice, data_type), room_path(alice, data_type)):
        response = api.put(path, {"event_id": "$x"}, token=alice.access_token)
        assert response.status == 405
        assert response.errcode == "M_BAD_JSON"
    assert not AccountData.objects.filter(type=data_type).exists()


@pytest.mark.parametrize("room_id", ["not-a-room", "%23alias%3Aexample.org", "!"])
def test_an_invalid_room_id_is_an_invalid_param(
    api: MatrixTestClient, alice: Persona, room_id: str
) -> None:
    put = api.put(room_path(alice, "org.example.x", room_id), {"a": 1}, token=alice.access_token)
    get = api.get(room_path(alice, "org.example.x", room_id), token=alice.access_token)

    assert (put.status, put.errcode) == (400, "M_INVALID_PARAM")
    assert (get.status, get.errcode) == (400, "M_INVALID_PARAM")
    assert not AccountData.objects.exists()


def test_content_must_be_a_json_object(api: MatrixTestClient, alice: Persona) -> None:
    array = api.request(
        "PUT", global_path(alice, "org.example.x"), raw=b"[1]", token=alice.access_token
    )
    junk = api.request(
        "PUT", global_path(alice, "org.example.x"), raw=b"{nope", token=alice.access_token
    )

    assert (array.status, array.errcode) == (400, "M_BAD_JSON")
    assert (junk.status, junk.errcode) == (400, "M_NOT_JSON")
    assert not AccountData.objects.exists()


def test_nobody_reads_or_writes_another_users_account_data(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    api.put(global_path(bob, "org.example.secret"), {"s": 1}, token=bob.access_token)

    paths = [global_path(bob, "org.example.secret"), room_path(bob, "org.example.secret")]
    for path in paths:
        read = api.get(path, token=alice.access_token)
        write = api.put(path, {"s": 2}, token=alice.access_token)
        assert (read.status, read.errcode) == (403, "M_FORBIDDEN")
        assert (write.status, write.errcode) == (403, "M_FORBIDDEN")
    assert api.get(paths[0], token=bob.access_token).body == {"s": 1}


def test_account_data_needs_a_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(global_path(alice, "org.example.x"))

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"
