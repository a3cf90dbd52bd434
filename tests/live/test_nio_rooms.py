"""Rooms, as matrix-nio sees them on a running homeserver: two users talk, edit, react,
redact and read the history back, without /sync.

Every step checks that nio parsed the answer into its success class; the raw events
(``event.source``) are checked against the Client-Server API's event format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinedMembersError,
    JoinedMembersResponse,
    JoinResponse,
    ReactionEvent,
    RedactedEvent,
    RedactionEvent,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomInviteResponse,
    RoomKickError,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomRedactError,
    RoomRedactResponse,
    RoomSendResponse,
)

from tests.live.conftest import LiveServer
from tests.live.test_nio_accounts import registered, run_async

pytestmark = pytest.mark.live

ROOM_NAME = "Tea party"
ROOM_TOPIC = "Why is a raven like a writing-desk?"


@dataclass
class Room:
    room_id: str
    alice: AsyncClient
    bob: AsyncClient


@asynccontextmanager
async def alice_and_bob_in_a_room(server: LiveServer) -> AsyncIterator[Room]:
    """Alice creates a private chat with a name and topic, invites Bob, Bob joins."""
    async with registered(server) as alice, registered(server) as bob:
        created = await alice.room_create(
            name=ROOM_NAME, topic=ROOM_TOPIC, preset=RoomPreset.private_chat
        )
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        invited = await alice.room_invite(room_id, bob.user_id)
        assert isinstance(invited, RoomInviteResponse), invited

        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        assert joined.room_id == room_id

        yield Room(room_id, alice, bob)


async def send(
    client: AsyncClient,
    room_id: str,
    content: dict[str, Any],
    txn_id: str,
    event_type: str = "m.room.message",
) -> str:
    response = await client.room_send(room_id, event_type, content, tx_id=txn_id)
    assert isinstance(response, RoomSendResponse), response
    assert response.room_id == room_id
    return str(response.event_id)


async def redact(client: AsyncClient, room_id: str, event_id: str, reason: str | None) -> str:
    response = await client.room_redact(room_id, event_id, reason=reason)
    assert isinstance(response, RoomRedactResponse), response
    assert response.room_id == room_id
    return str(response.event_id)


def text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


@run_async
async def test_a_conversation_reads_back_from_messages(homeserver: LiveServer) -> None:
    async with alice_and_bob_in_a_room(homeserver) as room:
        alice, bob, room_id = room.alice, room.bob, room.room_id

        hello = await send(alice, room_id, text("Hello Bob"), "a1")
        hi = await send(bob, room_id, text("Hi Alice"), "b1")
        question = await send(alice, room_id, text("How are you?"), "a2")
        rude = await send(bob, room_id, text("None of your business"), "b2")
        typo = await send(bob, room_id, text("Fnie, thanks"), "b3")
        edit_content = {
            **text("* How are you doing?"),
            "m.new_content": text("How are you doing?"),
            "m.relates_to": {"rel_type": "m.replace", "event_id": question},
        }
        edit = await send(alice, room_id, edit_content, "a3")
        reaction_content = {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": hello, "key": "👋"}
        }
        reaction = await send(bob, room_id, reaction_content, "b4", "m.reaction")

        # Bob has no power to redact Alice's events; Alice (the creator, level 100) may
        # redact his, and anyone may redact their own.
        refused = await bob.room_redact(room_id, hello)
        assert isinstance(refused, RoomRedactError), refused
        assert refused.status_code == "M_FORBIDDEN"
        moderated = await redact(alice, room_id, rude, "Be nice")
        retracted = await redact(bob, room_id, typo, None)

        sent = [hello, hi, question, rude, typo, edit, reaction, moderated, retracted]
        history = await bob.room_messages(room_id, limit=len(sent))

        assert isinstance(history, RoomMessagesResponse), history
        assert history.room_id == room_id
        assert [event.event_id for event in history.chunk] == sent[::-1]
        assert history.end, "more history (the room's creation) lies before this page"
        events = {event.event_id: event for event in history.chunk}
        raw = {event_id: event.source for event_id, event in events.items()}

        # The original messages, untouched, each with its sender; Bob's own carry the
        # transaction ID he sent them with, Alice's do not (he is not their sender).
        for event_id, sender, body in [
            (hello, alice.user_id, "Hello Bob"),
            (hi, bob.user_id, "Hi Alice"),
            (question, alice.user_id, "How are you?"),
        ]:
            event = events[event_id]
            assert isinstance(event, RoomMessageText), event
            assert (event.sender, event.body) == (sender, body)
            assert raw[event_id]["room_id"] == room_id
        assert raw[hi]["unsigned"]["transaction_id"] == "b1"
        assert "transaction_id" not in raw[hello]["unsigned"]

        # Event replacements, "Server-side aggregation of m.replace relationships": the
        # original keeps its content and bundles the most recent edit, formatted as
        # normal, under unsigned["m.relations"]["m.replace"].
        assert raw[question]["content"] == text("How are you?")
        bundled = raw[question]["unsigned"]["m.relations"]["m.replace"]
        assert bundled["event_id"] == edit
        assert bundled["sender"] == alice.user_id
        assert bundled["type"] == "m.room.message"
        assert bundled["content"] == edit_content
        assert bundled["origin_server_ts"] == raw[edit]["origin_server_ts"]
        assert isinstance(events[edit], RoomMessageText)
        assert raw[edit]["content"] == edit_content

        # Event annotations: the reaction is in the timeline but never aggregated.
        assert isinstance(events[reaction], ReactionEvent), events[reaction]
        assert events[reaction].reacts_to == hello
        assert events[reaction].key == "👋"
        assert "m.relations" not in raw[hello]["unsigned"]

        # Redactions: the redacted events keep their sender and type, lose their
        # content, and carry the redaction under unsigned.redacted_because.
        for target, redaction, redacter, reason in [
            (rude, moderated, alice.user_id, "Be nice"),
            (typo, retracted, bob.user_id, None),
        ]:
            event = events[target]
            assert isinstance(event, RedactedEvent), event
            assert (event.sender, event.type) == (bob.user_id, "m.room.message")
            assert (event.redacter, event.reason) == (redacter, reason)
            assert raw[target]["content"] == {}
            because = raw[target]["unsigned"]["redacted_because"]
            assert because["event_id"] == redaction
            assert because["type"] == "m.room.redaction"
            assert because["sender"] == redacter
            assert because["redacts"] == target

            redaction_event = events[redaction]
            assert isinstance(redaction_event, RedactionEvent), redaction_event
            assert redaction_event.redacts == target
            assert redaction_event.sender == redacter
            assert redaction_event.reason == reason

        # The next page goes on backwards from Bob's join.
        earlier = await bob.room_messages(room_id, start=history.end, limit=1)
        assert isinstance(earlier, RoomMessagesResponse), earlier
        [join] = [event.source for event in earlier.chunk]
        assert (join["type"], join["state_key"]) == ("m.room.member", bob.user_id)
        assert join["content"]["membership"] == "join"


def without_own_metadata(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what differs by viewer and moment: unsigned.age moves with the
    clock, unsigned.transaction_id is only shown to the sender's device."""
    unsigned = {
        key: without_own_metadata(value) if key == "redacted_because" else value
        for key, value in event.get("unsigned", {}).items()
        if key not in ("age", "transaction_id")
    }
    return {**event, "unsigned": unsigned}


@run_async
async def test_the_history_is_the_same_for_both_members(homeserver: LiveServer) -> None:
    async with alice_and_bob_in_a_room(homeserver) as room:
        first = await send(room.alice, room.room_id, text("one"), "t1")
        second = await send(room.bob, room.room_id, text("two"), "t2")
        await redact(room.alice, room.room_id, first, "mistake")

        pages = [
            await client.room_messages(room.room_id, limit=3) for client in (room.alice, room.bob)
        ]
        for page in pages:
            assert isinstance(page, RoomMessagesResponse), page
        [alices, bobs] = [[event.source for event in page.chunk] for page in pages]

        assert [event["event_id"] for event in alices][1:] == [second, first]
        assert [without_own_metadata(event) for event in alices] == [
            without_own_metadata(event) for event in bobs
        ]


@run_async
async def test_state_kicks_and_leaving(homeserver: LiveServer) -> None:
    async with alice_and_bob_in_a_room(homeserver) as room:
        alice, bob, room_id = room.alice, room.bob, room.room_id

        for event_type, content in [
            ("m.room.name", {"name": ROOM_NAME}),
            # createRoom's topic: an m.room.topic "with a text/plain mimetype".
            (
                "m.room.topic",
                {
                    "topic": ROOM_TOPIC,
                    "m.topic": {"m.text": [{"body": ROOM_TOPIC, "mimetype": "text/plain"}]},
                },
            ),
            ("m.room.join_rules", {"join_rule": "invite"}),
        ]:
            state = await bob.room_get_state_event(room_id, event_type)
            assert isinstance(state, RoomGetStateEventResponse), state
            assert state.content == content
        member = await bob.room_get_state_event(room_id, "m.room.member", alice.user_id)
        assert isinstance(member, RoomGetStateEventResponse), member
        assert member.content["membership"] == "join"

        # Bob (level 0) cannot kick Alice (level 100).
        kick = await bob.room_kick(room_id, alice.user_id, reason="mutiny")
        assert isinstance(kick, RoomKickError), kick
        assert kick.status_code == "M_FORBIDDEN"

        members = await alice.joined_members(room_id)
        assert isinstance(members, JoinedMembersResponse), members
        assert sorted(m.user_id for m in members.members) == sorted([alice.user_id, bob.user_id])

        left = await alice.room_leave(room_id)
        assert isinstance(left, RoomLeaveResponse), left

        members = await bob.joined_members(room_id)
        assert isinstance(members, JoinedMembersResponse), members
        assert [m.user_id for m in members.members] == [bob.user_id]
        gone = await alice.joined_members(room_id)
        assert isinstance(gone, JoinedMembersError), gone
        assert gone.status_code == "M_FORBIDDEN"

        member = await bob.room_get_state_event(room_id, "m.room.member", alice.user_id)
        assert isinstance(member, RoomGetStateEventResponse), member
        assert member.content["membership"] == "leave"
