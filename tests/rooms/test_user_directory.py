"""POST /user_directory/search (Client-Server API, "User directory"): who may be found
(a shared room, a public or world-readable room; never a left room, an unrelated
private room, a deactivated user), matching by word prefix and ranking, the directory
following profile and membership changes, remote users of federated rooms, bad input.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from operators.services import users
from rooms.models import (
    CurrentState,
    Membership,
    Room,
    UserDirectoryEntry,
    UserDirectoryPublicRoom,
)
from rooms.selectors_user_directory import search_users
from rooms.services.user_directory import DirectoryChange, do_apply_state_change
from tests.accounts.helpers import with_password_uia
from tests.conftest import MatrixTestClient, Persona, Response, forget_process_caches
from tests.federation.helpers import network
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed, remote_pdu
from tests.rooms.federation_peers import Peers, peers
from tests.rooms.helpers import create_room, invite, join, leave, set_state
from tests.rooms.test_federation_membership import make_join, send_join, signed_from

__all__ = ["network", "peers"]

SEARCH = "user_directory/search"


def search(api: MatrixTestClient, who: Persona, term: str, **body: Any) -> Response:
    return api.post(SEARCH, {"search_term": term, **body}, token=who.access_token)


def found(api: MatrixTestClient, who: Persona, term: str, **body: Any) -> list[str]:
    response = search(api, who, term, **body)
    assert response.status == 200, response.body
    return [result["user_id"] for result in response.body["results"]]


def set_displayname(api: MatrixTestClient, who: Persona, name: str) -> None:
    response = api.put(
        f"profile/{who.user_id}/displayname", {"displayname": name}, token=who.access_token
    )
    assert response.status == 200, response.body


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")


def private_room(api: MatrixTestClient, owner: Persona, *members: Persona) -> str:
    room = create_room(api, owner, preset="private_chat")
    for member in members:
        invite(api, owner, room, member)
        join(api, member, room)
    return room


# --- who may be found -----------------------------------------------------------------------


def test_a_user_sharing_a_private_room_is_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    set_displayname(api, bob, "Bob Builder")
    private_room(api, alice, bob)
    response = search(api, alice, "bob")
    assert response.status == 200
    assert response.body == {
        "results": [{"user_id": bob.user_id, "display_name": "Bob Builder"}],
        "limited": False,
    }


def test_a_user_in_an_unrelated_private_room_is_not_found(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    private_room(api, bob, carol)
    assert found(api, alice, "carol") == []
    assert found(api, bob, "carol") == [carol.user_id]


def test_a_user_in_a_public_room_is_found_by_anyone(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, bob, preset="public_chat")
    join(api, carol, room)
    assert found(api, alice, "carol") == [carol.user_id]
    assert found(api, alice, "bob") == [bob.user_id]


def test_a_world_readable_room_counts_as_public(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, bob, preset="private_chat")
    assert found(api, alice, "bob") == []
    set_state(
        api, bob, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    assert found(api, alice, "bob") == [bob.user_id]


def test_the_searcher_finds_themself_only_through_a_public_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    private_room(api, alice, bob)
    assert found(api, alice, "alice") == []
    create_room(api, alice, preset="public_chat")
    assert found(api, alice, "alice") == [alice.user_id]


def test_a_user_who_left_is_no_longer_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = private_room(api, alice, bob)
    assert found(api, alice, "bob") == [bob.user_id]
    leave(api, bob, room)
    assert found(api, alice, "bob") == []
    assert found(api, bob, "alice") == []


def test_a_user_still_sharing_another_room_stays_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    first = private_room(api, alice, bob)
    private_room(api, bob, alice)
    leave(api, bob, first)
    assert found(api, alice, "bob") == [bob.user_id]


def test_an_invited_user_is_not_found_before_joining(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")
    invite(api, alice, room, bob)
    assert found(api, alice, "bob") == []
    join(api, bob, room)
    assert found(api, alice, "bob") == [bob.user_id]


def test_a_deactivated_user_is_never_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    assert found(api, alice, "bob") == [bob.user_id]
    response = with_password_uia(api, "POST", "account/deactivate", bob)
    assert response.status == 200, response.body
    assert found(api, alice, "bob") == []
    assert not UserDirectoryEntry.objects.filter(user_id=bob.user_id).exists()


def test_users_disappear_when_the_room_goes_private_and_return_when_it_is_public(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, bob, preset="public_chat")
    join(api, carol, room)
    assert found(api, alice, "carol") == [carol.user_id]
    set_state(api, bob, room, "m.room.join_rules", {"join_rule": "invite"})
    assert found(api, alice, "carol") == []
    # Members of the room still find each other.
    assert found(api, bob, "carol") == [carol.user_id]
    set_state(api, bob, room, "m.room.join_rules", {"join_rule": "public"})
    assert found(api, alice, "carol") == [carol.user_id]


def test_world_readable_history_keeps_a_room_public_when_its_join_rule_closes(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, bob, preset="public_chat")
    set_state(
        api, bob, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    set_state(api, bob, room, "m.room.join_rules", {"join_rule": "invite"})
    assert found(api, alice, "bob") == [bob.user_id]
    set_state(api, bob, room, "m.room.history_visibility", {"history_visibility": "shared"})
    assert found(api, alice, "bob") == []


# --- matching and ranking -------------------------------------------------------------------


def test_matching_is_by_word_prefix_of_the_display_name_and_user_id_in_any_case(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    set_displayname(api, alice, "Alice Smith")
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    for term in ("ali", "ALI", "smi", "Alice Smith", "alice smi", alice.user_id, "@alice:"):
        assert found(api, bob, term) == [alice.user_id], term
    for term in ("lice", "mith", "alice jones", "x"):
        assert found(api, bob, term) == [], term
    # Terms without a letter or digit match nobody.
    assert found(api, bob, "@:") == []


def test_exact_then_prefix_matches_first_then_shared_rooms_then_by_name(
    api: MatrixTestClient, alice: Persona
) -> None:
    # Everyone below matches "sam"; alice shares a private room with some of them.
    names = {
        "zed": "Sam",  # exact display name
        "samuel": "Zack Samuel",  # localpart starts with the term
        "xavier": "Sammy X",  # display name starts with the term
        "yan": "Yan Sam",  # a later word only, shares a room with alice
        "wes": "Wes Sam",  # a later word only
        "vic": "Vic Sampson",  # a later word only
    }
    people = {}
    for localpart, name in names.items():
        people[localpart] = api.register(localpart)
        set_displayname(api, people[localpart], name)
    public = create_room(api, people["wes"], preset="public_chat")
    for localpart in ("zed", "samuel", "xavier", "vic"):
        join(api, people[localpart], public)
    private_room(api, alice, people["yan"])
    order = found(api, alice, "sam")
    assert order == [
        people["zed"].user_id,
        people["xavier"].user_id,
        people["samuel"].user_id,
        people["yan"].user_id,
        people["vic"].user_id,
        people["wes"].user_id,
    ]


def test_limit_and_limited(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    for n in range(4):
        join(api, api.register(f"user{n}"), room)
    response = search(api, alice, "user", limit=3)
    assert response.status == 200
    assert [r["user_id"] for r in response.body["results"]] == [
        f"@user{n}:{alice.user_id.split(':', 1)[1]}" for n in range(3)
    ]
    assert response.body["limited"] is True
    response = search(api, alice, "user")
    assert len(response.body["results"]) == 4
    assert response.body["limited"] is False


def test_a_limit_above_fifty_is_lowered(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    for n in range(51):
        join(api, api.register(f"many{n}"), room)
    response = search(api, alice, "many", limit=1000)
    assert response.status == 200
    assert len(response.body["results"]) == 50
    assert response.body["limited"] is True


# --- updates --------------------------------------------------------------------------------


def test_a_profile_change_is_searchable_at_once(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    set_displayname(api, bob, "Robert")
    private_room(api, alice, bob)
    assert found(api, alice, "rob") == [bob.user_id]
    set_displayname(api, bob, "Bobby Tables")
    avatar = api.put(
        f"profile/{bob.user_id}/avatar_url", {"avatar_url": "mxc://x/y"}, token=bob.access_token
    )
    assert avatar.status == 200
    assert found(api, alice, "rob") == []
    response = search(api, alice, "tables")
    assert response.body["results"] == [
        {"user_id": bob.user_id, "display_name": "Bobby Tables", "avatar_url": "mxc://x/y"}
    ]


# --- remote users ---------------------------------------------------------------------------


@pytest.fixture
def dave(db: None, peers: Peers) -> RemoteServer:
    server = RemoteServer("dave.test")
    peers.add(server)
    return server


def remote_join_as(
    api: MatrixTestClient, server: RemoteServer, room_id: str, localpart: str, name: str
) -> None:
    """A user of ``server`` joins with ``name`` as their display name."""
    template = make_join(api, server, room_id, server.user(localpart))
    assert template.status == 200, template.body
    answer = dict(template.body)
    answer["event"] = {
        **answer["event"],
        "content": {**answer["event"]["content"], "displayname": name},
    }
    pdu = signed_from(server, answer)
    got = send_join(api, server, room_id, pdu, answer["room_version"])
    assert got.status == 200, got.body


def test_remote_users_of_a_federated_room_are_found_with_their_member_event_profile(
    api: MatrixTestClient, alice: Persona, bob: Persona, dave: RemoteServer
) -> None:
    room = create_room(api, alice, preset="public_chat")
    remote_join_as(api, dave, room, "dave", "Dave Remote")
    dave_id = dave.user("dave")
    response = search(api, bob, "remote")
    assert response.body["results"] == [{"user_id": dave_id, "display_name": "Dave Remote"}]
    # A new name arrives as a new join event over federation.
    pdu = remote_pdu(
        room,
        dave,
        dave_id,
        "m.room.member",
        {"membership": "join", "displayname": "D. Vader"},
        dave_id,
    )
    sent = fed(
        api,
        dave,
        "PUT",
        f"{F}/send/t1",
        {"origin": "dave.test", "origin_server_ts": 1, "pdus": [pdu]},
    )
    assert sent.status == 200, sent.body
    assert found(api, bob, "remote") == []
    assert found(api, bob, "vader") == [dave_id]
    # The room seen from here is frozen once every local user has left it.
    leave(api, alice, room)
    assert found(api, bob, "vader") == []


# --- bad input ------------------------------------------------------------------------------


def test_an_access_token_is_required(api: MatrixTestClient) -> None:
    response = api.post(SEARCH, {"search_term": "x"})
    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"search_term": 5}, "M_BAD_JSON"),
        ({"search_term": "x", "limit": "ten"}, "M_BAD_JSON"),
        ({"search_term": "x", "limit": True}, "M_BAD_JSON"),
        ({"search_term": "x", "limit": -1}, "M_INVALID_PARAM"),
        ({"search_term": "x" * 257}, "M_INVALID_PARAM"),
    ],
)
def test_malformed_requests_are_refused(
    api: MatrixTestClient, alice: Persona, body: dict[str, Any], errcode: str
) -> None:
    response = api.post(SEARCH, body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, errcode)


def test_the_r0_path_answers_too(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    private_room(api, alice, bob)
    response = api.request(
        "POST",
        "/_matrix/client/r0/user_directory/search",
        {"search_term": "bob"},
        token=alice.access_token,
    )
    assert response.status == 200, response.body
    assert [r["user_id"] for r in response.body["results"]] == [bob.user_id]


def test_a_search_is_one_query(
    api: MatrixTestClient, alice: Persona, bob: Persona, django_assert_num_queries: Any
) -> None:
    private_room(api, alice, bob)
    with django_assert_num_queries(1):
        users, limited = search_users(alice.user_id, "bob", 10)
    assert [u.user_id for u in users] == [bob.user_id]
    assert limited is False


# --- a server that had rooms before the directory -----------------------------------------


def test_the_migration_fills_the_directory_as_the_services_keep_it(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, dave: RemoteServer
) -> None:
    set_displayname(api, bob, "Bob Builder")
    private_room(api, alice, bob)
    public = create_room(api, carol, preset="public_chat")
    remote_join_as(api, dave, public, "dave", "Dave Remote")
    closed = create_room(api, carol, preset="public_chat")
    set_state(api, carol, closed, "m.room.join_rules", {"join_rule": "invite"})
    # A room every local user left: its remote members are not shown.
    left = create_room(api, alice, preset="public_chat")
    remote_join_as(api, dave, left, "erin", "Erin Remote")
    leave(api, alice, left)
    terms = ["bob", "carol", "remote", "alice", "builder"]
    before = {
        (who.localpart, term): found(api, who, term) for who in (alice, bob) for term in terms
    }
    assert before[("alice", "bob")] == [bob.user_id]
    assert before[("bob", "remote")] == [dave.user("dave")]
    entries = set(UserDirectoryEntry.objects.values_list("user_id", "display_name", "avatar_url"))
    publics = set(UserDirectoryPublicRoom.objects.values_list("room_id", flat=True))

    UserDirectoryEntry.objects.all().delete()
    UserDirectoryPublicRoom.objects.all().delete()
    assert found(api, alice, "bob") == []
    migration = importlib.import_module("rooms.migrations.0013_fill_user_directory")
    migration.fill_user_directory(django_apps, None)

    assert set(UserDirectoryPublicRoom.objects.values_list("room_id", flat=True)) == publics
    # The fill has one entry per joined user, which the services may have outgrown
    # (entries of users who left every room are kept, and never shown).
    assert (
        set(UserDirectoryEntry.objects.values_list("user_id", "display_name", "avatar_url"))
        <= entries
    )
    after = {
        (who.localpart, term): found(api, who, term) for who in (alice, bob) for term in terms
    }
    assert after == before


def test_locked_and_support_users_are_not_shown(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    join(api, carol, room)
    users.lock_user(bob.user_id, True, actor=alice.user_id)
    users.create_or_modify_user(carol.user_id, {"user_type": "support"}, actor=alice.user_id)
    assert found(api, alice, "bob") == []
    assert found(api, alice, "carol") == []
    users.lock_user(bob.user_id, False, actor=alice.user_id)
    users.create_or_modify_user(carol.user_id, {"user_type": None}, actor=alice.user_id)
    assert found(api, alice, "bob") == [bob.user_id]
    assert found(api, alice, "carol") == [carol.user_id]


def test_a_state_change_costs_the_same_queries_whatever_its_number_of_members(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    for localpart in ("d1", "d2", "d3", "d4", "d5"):
        remote_join_as(api, dave, room_id, localpart, f"Member {localpart}")
    room = Room.objects.get(room_id=room_id)
    joined = dict(Membership.objects.filter(room=room).values_list("user_id", "event_id"))
    visibility = {
        ("m.room.join_rules", ""): CurrentState.objects.get(
            room=room, type="m.room.join_rules"
        ).event_id
    }

    def queries_for(user_ids: list[str]) -> int:
        # As a fork's resolution would: these members joined, the join rules changed.
        change = DirectoryChange(
            members={user: joined[user] for user in user_ids},
            old_members=dict.fromkeys(user_ids),
            visibility_events=visibility,
            visibility_changed=True,
        )
        forget_process_caches()
        with CaptureQueriesContext(connection) as captured:
            do_apply_state_change(room, change)
        return len(captured.captured_queries)

    one = queries_for([alice.user_id, dave.user("d1")])
    assert one <= 5
    assert queries_for(list(joined)) == one
    assert found(api, alice, "member") == [dave.user(f"d{n}") for n in range(1, 6)]
