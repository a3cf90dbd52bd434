"""Forked room graphs built by two remote servers, each ending in one event merging all tips.

Every scenario starts from `base_room`: alice (on server A) creates a public room; bob (B),
carol (A) and dave (B) join; alice makes bob and dave moderators (50) and sends START. The forks
hang off START. Some events are rejected on purpose (an escalation, a demoted user's state
event, wrong auth events, a kicked moderator citing his stale membership); which ones is the
reference's to say, not the scenario's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.graph.remote import RemoteRoom, RemoteServer

SERVER_A = "a.remote.example"
SERVER_B = "b.remote.example"


def servers() -> tuple[RemoteServer, RemoteServer]:
    return RemoteServer(SERVER_A, "a1"), RemoteServer(SERVER_B, "b1")


def levels(room: RemoteRoom, users: Mapping[str, int]) -> dict[str, Any]:
    """Power levels content: `users`, plus alice at 100 before v12 (where creators are not
    listed)."""
    all_users = dict(users)
    if not room.room_version.creators_have_infinite_power:
        all_users = {alice(room): 100, **all_users}
    return {"users": all_users}


def alice(room: RemoteRoom) -> str:
    return room.servers[SERVER_A].user("alice")


def bob(room: RemoteRoom) -> str:
    return room.servers[SERVER_B].user("bob")


def carol(room: RemoteRoom) -> str:
    return room.servers[SERVER_A].user("carol")


def dave(room: RemoteRoom) -> str:
    return room.servers[SERVER_B].user("dave")


def eve(room: RemoteRoom) -> str:
    return room.servers[SERVER_B].user("eve")


def topic(room: RemoteRoom, sender: str, name: str, **kwargs: Any) -> dict[str, Any]:
    return room.send(
        sender, "m.room.topic", {"topic": f"{name} by {sender}"}, state_key="", name=name, **kwargs
    )


def message(room: RemoteRoom, sender: str, name: str, **kwargs: Any) -> dict[str, Any]:
    return room.send(sender, "m.room.message", {"body": name}, name=name, **kwargs)


def base_room(room_version: str = "11") -> RemoteRoom:
    server_a, server_b = servers()
    room = server_a.create_room(server_a.user("alice"), room_version)
    room.add_server(server_b)
    for user in (bob(room), carol(room), dave(room)):
        room.member(user, user, "join", name=f"JOIN_{user[1:].split(':')[0].upper()}")
    room.send(
        alice(room),
        "m.room.power_levels",
        levels(room, {bob(room): 50, dave(room): 50}),
        state_key="",
        name="PL_MODS",
    )
    message(room, alice(room), "START")
    return room


def power_levels_race(room_version: str = "11") -> RemoteRoom:
    """bob (50) makes carol a moderator, who sets a topic and then tries to raise herself
    above him, and names the room citing that rejected escalation; concurrently alice
    demotes bob, who then tries a topic of his own."""
    room = base_room(room_version)
    room.send(
        bob(room),
        "m.room.power_levels",
        levels(room, {bob(room): 50, dave(room): 50, carol(room): 50}),
        state_key="",
        prev=["START"],
        name="PL_BOB",
    )
    topic(room, carol(room), "TOPIC_CAROL", prev=["PL_BOB"])
    room.send(
        carol(room),
        "m.room.power_levels",
        levels(room, {bob(room): 50, dave(room): 50, carol(room): 75}),
        state_key="",
        prev=["TOPIC_CAROL"],
        name="PL_CAROL_ESCALATES",
    )
    room.send(
        alice(room),
        "m.room.power_levels",
        levels(room, {bob(room): 0, dave(room): 50}),
        state_key="",
        prev=["START"],
        name="PL_ALICE_DEMOTES_BOB",
    )
    topic(room, bob(room), "TOPIC_BOB_DEMOTED", prev=["PL_ALICE_DEMOTES_BOB"])
    # carol's server believes her escalation and builds on it: citing a rejected auth event.
    escalated_auth = [room.id("PL_CAROL_ESCALATES"), room.id("JOIN_CAROL")]
    if room.room_version.create_event_in_auth_events:
        escalated_auth.append(room.id("CREATE"))
    room.send(
        carol(room),
        "m.room.name",
        {"name": "carol's room"},
        state_key="",
        prev=["PL_CAROL_ESCALATES"],
        auth=escalated_auth,
        name="NAME_CAROL_ON_REJECTED",
    )
    room.merge(alice(room))
    return room


def ban_against_join(room_version: str = "11") -> RemoteRoom:
    """alice bans eve on one fork; on the other, not knowing it, eve joins and talks; on a
    third, bob's server changes his message after hashing it."""
    room = base_room(room_version)
    room.member(alice(room), eve(room), "ban", prev=["START"], name="BAN_EVE")
    room.member(eve(room), eve(room), "join", prev=["START"], name="JOIN_EVE")
    message(room, eve(room), "MSG_EVE", prev=["JOIN_EVE"])
    message(room, bob(room), "MSG_BOB_TAMPERED", prev=["START"], content_after_hashing={"x": 1})
    room.merge(alice(room))
    return room


def topic_race(room_version: str = "11") -> RemoteRoom:
    """Three concurrent topics (bob, dave, alice), and carol's topic citing a topic among its
    auth events."""
    room = base_room(room_version)
    topic(room, bob(room), "TOPIC_BOB", prev=["START"])
    topic(room, dave(room), "TOPIC_DAVE", prev=["START"])
    topic(room, alice(room), "TOPIC_ALICE", prev=["START"])
    wrong_auth = [room.id("POWER"), room.id("JOIN_CAROL"), room.id("TOPIC_ALICE")]
    if room.room_version.create_event_in_auth_events:
        wrong_auth.append(room.id("CREATE"))
    topic(room, carol(room), "TOPIC_CAROL_WRONG_AUTH", prev=["TOPIC_ALICE"], auth=wrong_auth)
    room.merge(alice(room))
    return room


def kicked_moderator(room_version: str = "11") -> RemoteRoom:
    """alice kicks dave (50); on a fork not knowing it, dave sets the topic, kicks carol and
    talks; after the kick dave talks again citing his old membership, and alice names the
    room with content her server changed after hashing."""
    room = base_room(room_version)
    room.member(alice(room), dave(room), "leave", prev=["START"], name="KICK_DAVE")
    stale_auth = [room.id("PL_MODS"), room.id("JOIN_DAVE")]
    if room.room_version.create_event_in_auth_events:
        stale_auth.append(room.id("CREATE"))
    message(room, dave(room), "MSG_DAVE_AFTER_KICK", prev=["KICK_DAVE"], auth=stale_auth)
    topic(room, dave(room), "TOPIC_DAVE", prev=["START"])
    room.member(dave(room), carol(room), "leave", prev=["TOPIC_DAVE"], name="KICK_CAROL")
    room.send(
        alice(room),
        "m.room.name",
        {"name": "the room"},
        state_key="",
        prev=["KICK_DAVE"],
        name="NAME_TAMPERED",
        content_after_hashing={"name": "not what was hashed"},
    )
    message(room, dave(room), "MSG_DAVE_LATE", prev=["KICK_CAROL"])
    room.merge(alice(room))
    return room


SCENARIOS: dict[str, Callable[[str], RemoteRoom]] = {
    "power_levels_race": power_levels_race,
    "ban_against_join": ban_against_join,
    "topic_race": topic_race,
    "kicked_moderator": kicked_moderator,
}
