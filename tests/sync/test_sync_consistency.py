"""An incremental sync applied to the previous result equals a fresh initial sync.

In the spirit of Zulip's ``verify_action``: three users act at random (seeded, a
bounded number of steps) in a handful of rooms: create, invite, join, leave, send,
set state, change their profile, set account data, kick and ban. After every step
each user applies an incremental sync (since their previous ``next_batch``) to the
view they have built so far, and that view must equal the view of a fresh initial
sync: the same rooms in the same membership sections, the same current state, the
same account data, and no timeline event missing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from rooms import recent
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import room_path
from tests.sync.helpers import sync

STEPS = 45
MAX_ROOMS = 5
StateMap = dict[tuple[str, str], str]


@dataclass
class RoomView:
    section: str
    state: StateMap = field(default_factory=dict)
    # For invites: the stripped state's keys (stripped events have no IDs).
    stripped: set[tuple[str, str]] = field(default_factory=set)
    timeline: set[str] = field(default_factory=set)


@dataclass
class ClientView:
    rooms: dict[str, RoomView] = field(default_factory=dict)
    account_data: dict[str, Any] = field(default_factory=dict)
    # Room account data outlives membership: kept per room ID, whatever the section.
    room_account_data: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply_room_account_data(self, room_id: str, entry: dict[str, Any]) -> None:
        for event in entry.get("account_data", {}).get("events", []):
            self.room_account_data.setdefault(room_id, {})[event["type"]] = event["content"]


@dataclass(frozen=True)
class Mode:
    """How the client syncs: its timeline limit and whether it asks for state_after."""

    timeline_limit: int
    use_state_after: bool

    @property
    def whole_timelines(self) -> bool:
        return self.timeline_limit >= 1000

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"filter": {"room": {"timeline": {"limit": self.timeline_limit}}}}
        if self.use_state_after:
            params["use_state_after"] = True
        return params


def apply(view: ClientView, body: dict[str, Any], mode: Mode) -> None:
    """Update a client's view with a /sync response, as the spec tells clients to."""
    rooms = body.get("rooms", {})
    for room_id, entry in rooms.get("join", {}).items():
        room = view.rooms.get(room_id)
        if room is None or room.section != "join":
            room = view.rooms[room_id] = RoomView("join")
        timeline = entry["timeline"]["events"]
        if mode.use_state_after:
            assert "state" not in entry
            state_events = entry["state_after"]["events"]
        else:
            assert "state_after" not in entry
            state_events = entry["state"]["events"] + [e for e in timeline if "state_key" in e]
        for event in state_events:
            room.state[(event["type"], event["state_key"])] = event["event_id"]
        room.timeline.update(e["event_id"] for e in timeline)
        view.apply_room_account_data(room_id, entry)
    for room_id, entry in rooms.get("invite", {}).items():
        view.rooms[room_id] = RoomView(
            "invite",
            stripped={(e["type"], e["state_key"]) for e in entry["invite_state"]["events"]},
        )
    for room_id, entry in rooms.get("leave", {}).items():
        view.apply_room_account_data(room_id, entry)
        # Without include_leave, an initial sync does not list rooms one has left.
        view.rooms.pop(room_id, None)
    for event in body["account_data"]["events"]:
        view.account_data[event["type"]] = event["content"]


def check_same(accumulated: ClientView, fresh: ClientView, mode: Mode, who: str) -> None:
    assert accumulated.account_data == fresh.account_data, who
    assert {r: v.section for r, v in accumulated.rooms.items()} == {
        r: v.section for r, v in fresh.rooms.items()
    }, who
    for room_id, room in fresh.rooms.items():
        mine = accumulated.rooms[room_id]
        where = f"{who} in {room_id}"
        if room.section == "invite":
            assert mine.stripped == room.stripped, where
            continue
        assert mine.state == room.state, where
        mine_data = accumulated.room_account_data.get(room_id, {})
        assert mine_data == fresh.room_account_data.get(room_id, {}), where
        if mode.whole_timelines:
            # No event is missing, and none the user may not see was handed out.
            assert room.timeline <= mine.timeline, where
            assert mine.timeline <= room.timeline, where


@dataclass
class World:
    """The users and rooms of one random run, and the helpers acting for them."""

    api: MatrixTestClient
    users: list[Persona]
    rng: random.Random
    rooms: dict[str, Persona] = field(default_factory=dict)  # room ID -> creator
    counter: int = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def pick_user(self) -> Persona:
        return self.rng.choice(self.users)

    def pick_room(self) -> str | None:
        return self.rng.choice(sorted(self.rooms)) if self.rooms else None

    def request(self, method: str, path: str, who: Persona, body: Any = None) -> int:
        response = self.api.request(method, path, body or {}, token=who.access_token)
        # Refusals (not a member, no permission) are fine; server errors are not.
        assert response.status < 500, (method, path, response.body)
        return response.status

    # -- actions -----------------------------------------------------------------------

    def create(self, who: Persona | None = None, preset: str | None = None) -> None:
        if len(self.rooms) >= MAX_ROOMS:
            return self.send()
        who = who or self.pick_user()
        preset = preset or self.rng.choice(["private_chat", "public_chat"])
        response = self.api.post(
            "createRoom",
            {"preset": preset, "name": f"room {self._next()}"},
            token=who.access_token,
        )
        assert response.status == 200, response.body
        self.rooms[response.body["room_id"]] = who
        return None

    def invite(self) -> None:
        room, who, target = self.pick_room(), self.pick_user(), self.pick_user()
        if room:
            self.request("POST", room_path(room, "invite"), who, {"user_id": target.user_id})

    def join(self) -> None:
        room, who = self.pick_room(), self.pick_user()
        if room:
            self.request("POST", f"join/{quote(room, safe='')}", who)

    def leave(self) -> None:
        room, who = self.pick_room(), self.pick_user()
        if room:
            self.request("POST", room_path(room, "leave"), who)

    def send(self) -> None:
        room, who = self.pick_room(), self.pick_user()
        if room:
            n = self._next()
            self.request(
                "PUT",
                room_path(room, "send", "m.room.message", f"t{n}"),
                who,
                {"msgtype": "m.text", "body": f"message {n}"},
            )

    def set_state(self) -> None:
        room, who = self.pick_room(), self.pick_user()
        if room:
            event_type, key = self.rng.choice(
                [("m.room.topic", ""), ("m.room.name", ""), ("org.example.flag", "k")]
            )
            content = {"topic": f"t{self._next()}"} if event_type == "m.room.topic" else {}
            if event_type == "m.room.name":
                content = {"name": f"n{self._next()}"}
            if event_type == "org.example.flag":
                content = {"n": self._next()}
            self.request("PUT", room_path(room, "state", event_type, key), who, content)

    def change_profile(self) -> None:
        who = self.pick_user()
        self.request(
            "PUT",
            f"profile/{quote(who.user_id, safe='')}/displayname",
            who,
            {"displayname": f"{who.localpart} {self._next()}"},
        )

    def set_account_data(self) -> None:
        who = self.pick_user()
        user = quote(who.user_id, safe="")
        data_type = self.rng.choice(["org.example.a", "org.example.b"])
        room = self.pick_room() if self.rng.random() < 0.5 else None
        path = (
            f"user/{user}/rooms/{quote(room, safe='')}/account_data/{data_type}"
            if room
            else f"user/{user}/account_data/{data_type}"
        )
        self.request("PUT", path, who, {"n": self._next()})

    def kick_or_ban(self) -> None:
        room, target = self.pick_room(), self.pick_user()
        if room:
            action = self.rng.choice(["kick", "kick", "ban", "unban"])
            creator = self.rooms[room]
            self.request("POST", room_path(room, action), creator, {"user_id": target.user_id})

    def actions(self) -> list[tuple[Callable[[], None], int]]:
        return [
            (self.create, 2),
            (self.invite, 4),
            (self.join, 5),
            (self.leave, 2),
            (self.send, 6),
            (self.set_state, 3),
            (self.change_profile, 2),
            (self.set_account_data, 2),
            (self.kick_or_ban, 1),
        ]

    def step(self) -> str:
        actions = self.actions()
        [action] = self.rng.choices([a for a, _ in actions], weights=[w for _, w in actions])
        action()
        return action.__name__


MODES = [
    Mode(timeline_limit=1000, use_state_after=False),
    Mode(timeline_limit=1000, use_state_after=True),
    # Limited timelines: the state (with the gap's changes) must still add up.
    Mode(timeline_limit=2, use_state_after=False),
    Mode(timeline_limit=2, use_state_after=True),
]


# Each mode runs its own seeded sequence of actions. Which rooms the actions pick
# depends on the (random) room IDs, so a sequence covers different cases run to run.
CASES = [
    pytest.param(seed, mode, id=f"limit{mode.timeline_limit}-after{mode.use_state_after:d}")
    for seed, mode in enumerate(MODES, start=1)
]


@pytest.mark.parametrize("reads", ["shared", "per-room"])
@pytest.mark.parametrize(("seed", "mode"), CASES)
def test_incremental_syncs_add_up_to_an_initial_sync(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    carol: Persona,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    mode: Mode,
    reads: str,
) -> None:
    if reads == "per-room":
        # No range is short enough for rooms.recent: every incremental sync reads its
        # rooms' events with its own queries, as after a long absence.
        monkeypatch.setattr(recent, "MAX_EVENTS", 0)
    users = [alice, bob, carol]
    world = World(api, users, random.Random(seed))
    # Every run starts with a public room and two private ones, so every action can
    # land from the first step.
    world.create(alice, "public_chat")
    world.create(bob, "private_chat")
    world.create(carol, "private_chat")
    views = {user.user_id: ClientView() for user in users}
    tokens: dict[str, str] = {}
    for user in users:
        body = sync(api, user, **mode.params())
        apply(views[user.user_id], body, mode)
        tokens[user.user_id] = body["next_batch"]
    history: list[str] = []
    for _ in range(STEPS):
        # Profile changes reach the rooms from the worker, after commit.
        with django_capture_on_commit_callbacks(execute=True):
            history.append(world.step())
        for user in users:
            body = sync(api, user, since=tokens[user.user_id], **mode.params())
            apply(views[user.user_id], body, mode)
            tokens[user.user_id] = body["next_batch"]
            fresh = ClientView()
            apply(fresh, sync(api, user, **mode.params()), mode)
            check_same(views[user.user_id], fresh, mode, f"{user.localpart} after {history}")
