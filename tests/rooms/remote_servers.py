"""Remote rooms that local users are in, and the remote servers answering this server's
requests about them, for tests of what local clients see.

``local_server()`` signs local users' events as this server does (its own key), so that
a local user can join a `RemoteRoom` (`join_through`: the send_join answer persisted by
rooms.services.incoming.receive_joined_room, as a join through another server leaves
the room: its state, no history). ``ServingNetwork`` (fixture ``serving``) replaces the
wire (federation.transport.send, as the client and discovery import it): each added
remote server answers GET /backfill, /event and /state_ids from its rooms' graphs as a
correct server would; one marked down refuses connections. Every request is recorded.
"""

from __future__ import annotations

import copy
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.conf import settings

from federation import client, discovery, srv
from federation.keys import server_signing_key
from federation.transport import HttpResponse, Target, TransportError
from protocol.events import Event as PDUEvent
from rooms.models import Event
from rooms.services.incoming import receive_joined_room
from tests.graph.remote import RemoteRoom, RemoteServer

F = "/_matrix/federation/v1"


def local_server() -> RemoteServer:
    """This server as a RemoteRoom participant: it signs its users' events with its own
    key (no keys to install: the keyring knows its own)."""
    server = RemoteServer(settings.SERVER_NAME)
    server.signing_key = server_signing_key()
    return server


def join_through(room: RemoteRoom, resident: RemoteServer, user_id: str) -> str:
    """``user_id`` (a local user) joins ``room`` through ``resident``: the join is added
    to the graph and persisted here with the state before it and its auth chain, and
    nothing of the room's history. The join's event ID."""
    if settings.SERVER_NAME not in room.servers:
        room.add_server(local_server())
    pdu = room.member(user_id, user_id, "join")
    join_id = PDUEvent(pdu, room.room_version).event_id
    state_ids, chain_ids = resident.get_state_ids(room.room_id, join_id)
    receive_joined_room(
        copy.deepcopy(pdu),
        resident.get_events(room.room_id, state_ids),
        resident.get_events(room.room_id, chain_ids),
        origin=resident.server_name,
    )
    assert not Event.objects.get(event_id=join_id).outlier
    return join_id


def _json(obj: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(obj).encode())


def _not_found() -> HttpResponse:
    return _json({"errcode": "M_NOT_FOUND", "error": "Not found"}, 404)


@dataclass
class Request:
    server: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    timeout_s: float

    @property
    def endpoint(self) -> str:
        """``backfill``, ``event``, ``state_ids``... (the segment after the version)."""
        return self.path.removeprefix(F + "/").split("/", 1)[0]


class ServingNetwork:
    def __init__(self) -> None:
        self.servers: dict[str, RemoteServer] = {}
        self.down: set[str] = set()
        self.requests: list[Request] = []

    def add(self, server: RemoteServer) -> None:
        self.servers[server.server_name] = server

    def asked(self, endpoint: str) -> list[Request]:
        return [r for r in self.requests if r.endpoint == endpoint]

    def send(
        self,
        target: Target,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout_s: float,
        max_bytes: int,
    ) -> HttpResponse:
        name = target.host_header
        split = urlsplit(path)
        request = Request(
            name, method, split.path, parse_qs(split.query), dict(headers or {}), timeout_s
        )
        self.requests.append(request)
        server = self.servers.get(name)
        if server is None or name in self.down:
            raise TransportError(f"{target.connect_host}: connection refused")
        segments = [unquote(s) for s in split.path.removeprefix(F + "/").split("/")]
        if len(segments) != 2:
            return _not_found()
        endpoint, argument = segments
        if method == "POST" and endpoint == "get_missing_events":
            room = server.rooms.get(argument)
            if room is None:
                return _not_found()
            asked = json.loads(body or b"{}")
            events = _missing(room, asked["earliest_events"], asked["latest_events"])
            return _json({"events": events[-int(asked.get("limit", 10)) :]})
        if method != "GET":
            return _not_found()
        if endpoint == "event":
            room = next((r for r in server.rooms.values() if argument in r.pdus), None)
            if room is None:
                return _not_found()
            return _json({"origin": name, "origin_server_ts": 1, "pdus": [room.pdus[argument]]})
        if endpoint == "state_ids":
            try:
                pdu_ids, chain_ids = server.get_state_ids(argument, request.query["event_id"][0])
            except KeyError:
                return _not_found()
            return _json({"pdu_ids": pdu_ids, "auth_chain_ids": chain_ids})
        if endpoint == "backfill":
            room = server.rooms.get(argument)
            if room is None:
                return _not_found()
            limit = int(request.query["limit"][0])
            pdus = list(_backfill(room, request.query["v"], limit))
            return _json({"origin": name, "origin_server_ts": 1, "pdus": pdus})
        return _not_found()


def _missing(room: RemoteRoom, earliest: list[str], latest: list[str]) -> list[dict[str, Any]]:
    """The events before ``latest`` back to (not including) ``earliest``, oldest first
    (as rooms.federation.serving.missing_events answers)."""
    found: dict[str, dict[str, Any]] = {}
    todo = [
        prev
        for event_id in latest
        if event_id in room.pdus
        for prev in room.pdus[event_id]["prev_events"]
    ]
    while todo:
        event_id = todo.pop()
        if event_id in found or event_id in earliest or event_id not in room.pdus:
            continue
        found[event_id] = copy.deepcopy(room.pdus[event_id])
        todo.extend(found[event_id]["prev_events"])
    return sorted(found.values(), key=lambda pdu: pdu["depth"])


def _backfill(room: RemoteRoom, start_ids: list[str], limit: int) -> Iterator[dict[str, Any]]:
    """The events ``start_ids`` and those before them, deepest first (as
    rooms.federation.serving.backfill walks them)."""
    seen = set(start_ids)
    queue = [(-room.pdus[e]["depth"], e) for e in start_ids if e in room.pdus]
    heapq.heapify(queue)
    for _ in range(limit):
        if not queue:
            return
        _, event_id = heapq.heappop(queue)
        pdu = room.pdus[event_id]
        yield copy.deepcopy(pdu)
        for prev in pdu["prev_events"]:
            if prev not in seen and prev in room.pdus:
                seen.add(prev)
                heapq.heappush(queue, (-room.pdus[prev]["depth"], prev))


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> ServingNetwork:
    network = ServingNetwork()
    monkeypatch.setattr(client, "send", network.send)
    monkeypatch.setattr(discovery, "send", network.send)
    monkeypatch.setattr(srv, "lookup_srv", lambda name, timeout_s=3.0: [])
    return network
