"""PUT /rooms/{roomId}/redact/{eventId}/{txnId} (Client-Server API, "Redactions")."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from rooms.models import Event
from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import (
    create_room,
    join,
    messages,
    room_path,
    send,
    set_state,
    state_map,
)


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    return room


def redact(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    event_id: str,
    reason: str | None = None,
    *,
    txn_id: str = "r1",
    expect: int = 200,
) -> Response:
    body = {} if reason is None else {"reason": reason}
    response = api.put(room_path(room, "redact", event_id, txn_id), body, token=who.access_token)
    assert response.status == expect, response.body
    return response


def get_event(api: MatrixTestClient, who: Persona, room: str, event_id: str) -> dict[str, Any]:
    response = api.get(room_path(room, "event", event_id), token=who.access_token)
    assert response.status == 200, response.body
    return response.body


# -- who may redact --------------------------------------------------------------------


def test_anyone_may_redact_their_own_events(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    event_id = send(api, bob, room, "oops")

    response = redact(api, bob, room, event_id, "typo")

    redaction_id = response.body["event_id"]
    assert redaction_id.startswith("$")
    event = get_event(api, alice, room, event_id)
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["event_id"] == redaction_id


def test_redacting_others_events_needs_the_redact_level(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    alices = send(api, alice, room, "alice's words")

    refused = redact(api, bob, room, alices, expect=403)

    assert refused.errcode == "M_FORBIDDEN"
    assert get_event(api, bob, room, alices)["content"]["body"] == "alice's words"
    assert not Event.objects.filter(type="m.room.redaction").exists()


def test_a_moderator_may_redact_others_events(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    bobs = send(api, bob, room, "spam")

    redact(api, alice, room, bobs, "spam")

    assert get_event(api, bob, room, bobs)["content"] == {}


def test_the_redact_level_is_the_rooms_setting(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, room: str
) -> None:
    join(api, carol, room)
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    set_state(api, alice, room, "m.room.power_levels", {**levels, "redact": 0})
    carols = send(api, carol, room, "anyone may clean this up")

    redact(api, bob, room, carols)

    assert get_event(api, alice, room, carols)["content"] == {}


def test_redacting_own_events_needs_the_m_room_redaction_event_level(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    bobs = send(api, bob, room, "mine")
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    set_state(
        api,
        alice,
        room,
        "m.room.power_levels",
        {**levels, "events": {**levels["events"], "m.room.redaction": 50}},
    )

    refused = redact(api, bob, room, bobs, expect=403)

    assert refused.errcode == "M_FORBIDDEN"
    assert get_event(api, bob, room, bobs)["content"]["body"] == "mine"


def test_a_non_member_cannot_redact(
    api: MatrixTestClient, alice: Persona, carol: Persona, room: str
) -> None:
    event_id = send(api, alice, room, "hello")

    assert redact(api, carol, room, event_id, expect=403).errcode == "M_FORBIDDEN"


def test_redacting_an_unknown_event_is_not_found(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    response = redact(api, alice, room, f"$unknown:{settings.SERVER_NAME}", expect=404)

    assert response.errcode == "M_NOT_FOUND"


def test_an_event_of_another_room_cannot_be_redacted_through_this_one(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    elsewhere = create_room(api, alice)
    event_id = send(api, alice, elsewhere, "over there")

    response = redact(api, alice, room, event_id, expect=400)

    assert response.errcode == "M_INVALID_PARAM"
    assert get_event(api, alice, elsewhere, event_id)["content"]["body"] == "over there"
    assert "redacted_because" not in get_event(api, alice, elsewhere, event_id)["unsigned"]


# -- transaction IDs -------------------------------------------------------------------


def test_a_retried_redaction_returns_the_same_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    event_id = send(api, alice, room, "hello")

    first = redact(api, alice, room, event_id, txn_id="same").body["event_id"]
    retry = redact(api, alice, room, event_id, txn_id="same").body["event_id"]

    assert retry == first
    assert Event.objects.filter(type="m.room.redaction").count() == 1


def test_a_redaction_and_a_message_may_share_a_transaction_id(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    # "Transaction identifiers": the scope is one device and one endpoint.
    event_id = send(api, alice, room, "hello", txn_id="shared")

    redaction_id = redact(api, alice, room, event_id, txn_id="shared").body["event_id"]

    assert redaction_id != event_id
    assert get_event(api, alice, room, event_id)["content"] == {}


# -- what a redacted event looks like --------------------------------------------------


def test_redacted_because_is_the_redaction_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat", room_version="11")
    join(api, bob, room)
    event_id = send(api, bob, room, "regrettable")
    redaction_id = redact(api, alice, room, event_id, "off topic").body["event_id"]

    because = get_event(api, bob, room, event_id)["unsigned"]["redacted_because"]

    assert because["event_id"] == redaction_id
    assert because["type"] == "m.room.redaction"
    assert because["sender"] == alice.user_id
    assert because["room_id"] == room
    # Room v11: `redacts` moved into the content; the top level keeps it for older clients.
    assert because["content"] == {"reason": "off topic", "redacts": event_id}
    assert because["redacts"] == event_id


def test_before_v11_redacts_is_a_top_level_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat", room_version="10")
    event_id = send(api, alice, room, "x")
    redaction_id = redact(api, alice, room, event_id, "why").body["event_id"]

    redaction = get_event(api, alice, room, redaction_id)

    assert redaction["redacts"] == event_id
    assert redaction["content"] == {"reason": "why"}


def test_the_redacted_event_is_stripped_in_messages_too(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    event_id = send(api, bob, room, {"msgtype": "m.text", "body": "secret", "extra": 1})
    redaction_id = redact(api, bob, room, event_id).body["event_id"]

    chunk = messages(api, alice, room, limit=2).body["chunk"]

    assert [e["event_id"] for e in chunk] == [redaction_id, event_id]
    redacted = chunk[1]
    assert redacted["content"] == {}
    assert redacted["type"] == "m.room.message"
    assert redacted["sender"] == bob.user_id
    assert redacted["unsigned"]["redacted_because"]["event_id"] == redaction_id


@pytest.mark.parametrize(
    ("version", "kept"),
    [
        ("7", {"join_rule": "public"}),
        ("8", {"join_rule": "public", "allow": []}),
        ("12", {"join_rule": "public", "allow": []}),
    ],
)
def test_redacted_join_rules_keep_allow_from_room_version_8(
    api: MatrixTestClient, alice: Persona, version: str, kept: dict[str, Any]
) -> None:
    room = create_room(api, alice, room_version=version)
    event_id = set_state(
        api,
        alice,
        room,
        "m.room.join_rules",
        {"join_rule": "public", "allow": [], "org.example.note": "dropped"},
    ).body["event_id"]

    redact(api, alice, room, event_id)

    assert get_event(api, alice, room, event_id)["content"] == kept
    assert state_map(api, alice, room)[("m.room.join_rules", "")]["content"] == kept


@pytest.mark.parametrize(
    ("version", "keeps_everything"), [("1", False), ("10", False), ("11", True), ("12", True)]
)
def test_a_redacted_create_event_keeps_all_its_content_from_room_version_11(
    api: MatrixTestClient, alice: Persona, version: str, keeps_everything: bool
) -> None:
    room = create_room(api, alice, room_version=version, creation_content={"m.federate": False})
    create_id = state_map(api, alice, room)[("m.room.create", "")]["event_id"]

    redact(api, alice, room, create_id)

    content = get_event(api, alice, room, create_id)["content"]
    if keeps_everything:
        assert content == {"m.federate": False, "room_version": version}
    else:
        assert content == {"creator": alice.user_id}


@pytest.mark.parametrize(("version", "keeps_invite"), [("10", False), ("11", True)])
def test_redacted_power_levels_keep_invite_from_room_version_11(
    api: MatrixTestClient, alice: Persona, version: str, keeps_invite: bool
) -> None:
    room = create_room(api, alice, room_version=version)
    levels_id = state_map(api, alice, room)[("m.room.power_levels", "")]["event_id"]

    redact(api, alice, room, levels_id)

    content = get_event(api, alice, room, levels_id)["content"]
    assert ("invite" in content) is keeps_invite
    assert "notifications" not in content
    assert content["users"] == {alice.user_id: 100}


def test_prev_content_of_a_redacted_state_event_is_redacted_too(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, name="Rude name")
    first = state_map(api, alice, room)[("m.room.name", "")]["event_id"]
    redact(api, alice, room, first)

    set_state(api, alice, room, "m.room.name", {"name": "Polite name"})

    current = state_map(api, alice, room)[("m.room.name", "")]
    assert current["content"] == {"name": "Polite name"}
    assert current["unsigned"]["prev_content"] == {}


def test_an_event_is_redacted_once(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    event_id = send(api, bob, room, "twice")
    first = redact(api, bob, room, event_id, txn_id="a").body["event_id"]

    redact(api, alice, room, event_id, txn_id="b")

    because = get_event(api, alice, room, event_id)["unsigned"]["redacted_because"]
    assert because["event_id"] == first
