"""A remote server resident in a room, on the fake network (tests/federation/helpers.py):
the other side of this server's joins (rooms.services.remote_membership).

``Resident`` answers, for the rooms of its ``RemoteServer`` (tests/graph/remote.py),
what a joining server asks: ``GET /query/directory`` for its aliases, ``GET /make_join``
(a template on the room's tips), ``PUT /v2/send_join`` (the join added to the room's
graph, answered with the state before it and its auth chain), and, as the source of
missing events, ``GET /event`` and ``GET /state_ids``. Every request must carry this
server's valid X-Matrix signature. Tests spoil it through ``refuse`` (an error answer
for a route) and ``template_for`` (a template for someone else), or make it countersign
restricted joins (``authoriser``). ``take_outbound`` delivers what this server queued for
the resident into its room, as the outbound queue would have.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.conf import settings

from federation import client
from federation.keys import server_signing_key
from federation.models import OutboundPDU
from federation.transport import HttpResponse, Target
from protocol.auth_rules import auth_types_for_event
from protocol.events import Event as PDUEvent
from protocol.x_matrix import parse_authorization, verify_request
from tests.federation.helpers import FakeNetwork, json_response
from tests.graph.remote import RemoteRoom, RemoteServer

MEMBER = "m.room.member"


def _error(status: int, errcode: str, error: str = "refused") -> HttpResponse:
    return json_response({"errcode": errcode, "error": error}, status)


class Resident:
    def __init__(self, network: FakeNetwork, server: RemoteServer) -> None:
        self.network = network
        self.server = server
        network.add(server.server_name)
        server.install_keys()
        self.aliases: dict[str, str] = {}
        # (method, path) of every request this server received.
        self.requests: list[tuple[str, str]] = []
        # Route name ("make_join", "send_join", ...) -> the error it answers with.
        self.refuse: dict[str, HttpResponse] = {}
        # Restricted joins: the resident's user named as authoriser; the join is
        # countersigned and sent back in send_join's "event".
        self.authoriser: str | None = None
        # The user the make_join template is for (spoiling it), if not the one asked.
        self.template_for: str | None = None
        # The joins send_join took, in order.
        self.joins: list[str] = []
        # send_join with omit_members=true answers with partial state (the member
        # events left out but the joining user's own, the state's events out of the
        # auth chain, servers_in_room), as Synapse does.
        self.partial = False

    @property
    def name(self) -> str:
        return self.server.server_name

    def room(self, room_id: str) -> RemoteRoom:
        return self.server.rooms[room_id]

    def made_joins(self) -> int:
        return sum(1 for _method, path in self.requests if "/make_join/" in path)

    # --- the network side -----------------------------------------------------------------

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Any:
        content = json.loads(body) if body else None
        auth = parse_authorization(headers["Authorization"])
        assert auth.origin == settings.SERVER_NAME
        verify_request(auth, server_signing_key().verify_key, method, path, self.name, content)
        self.requests.append((method, path))
        url = urlsplit(path)
        parts = [unquote(p) for p in url.path.split("/")]
        query = parse_qs(url.query)
        route = parts[4] if len(parts) > 4 else ""
        if route in self.refuse:
            return self.refuse[route]
        if route == "query" and parts[5] == "directory":
            alias = query["room_alias"][0]
            if alias not in self.aliases:
                return _error(404, "M_NOT_FOUND", "no such alias")
            return json_response({"room_id": self.aliases[alias], "servers": [self.name]})
        if route == "make_join":
            return self._make_join(parts[5], parts[6], query.get("ver", ["1"]))
        if route == "send_join" and parts[3] == "v2":
            omit = query.get("omit_members", ["false"])[0] == "true"
            return self._send_join(parts[5], parts[6], content, omit_members=omit)
        if route == "event":
            pdus = self.server.get_events(self._room_of(parts[5]), [parts[5]])
            if not pdus:
                return _error(404, "M_NOT_FOUND")
            return json_response({"origin": self.name, "origin_server_ts": 0, "pdus": pdus})
        if route == "state_ids":
            state, chain = self.server.get_state_ids(parts[5], query["event_id"][0])
            return json_response({"pdu_ids": state, "auth_chain_ids": chain})
        if route == "state":
            room = self.room(parts[5])
            state, chain = self.server.get_state_ids(parts[5], query["event_id"][0])
            return json_response(
                {
                    "pdus": [room.pdus[e] for e in state],
                    "auth_chain": [room.pdus[e] for e in chain],
                }
            )
        return _error(404, "M_UNRECOGNIZED", "Unrecognized request")

    def _room_of(self, event_id: str) -> str:
        for room_id, room in self.server.rooms.items():
            if event_id in room.pdus:
                return room_id
        return ""

    def _make_join(self, room_id: str, user_id: str, versions: list[str]) -> HttpResponse:
        if room_id not in self.server.rooms:
            return _error(404, "M_NOT_FOUND", "unknown room")
        room = self.room(room_id)
        version = room.room_version
        if version.identifier not in versions:
            return json_response(
                {
                    "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
                    "error": "upgrade",
                    "room_version": version.identifier,
                },
                400,
            )
        content: dict[str, Any] = {"membership": "join"}
        if self.authoriser is not None:
            content["join_authorised_via_users_server"] = self.authoriser
        tips = room.reference.tips()
        state = room.reference.state_for_prevs(tips)
        keys = auth_types_for_event(version, MEMBER, user_id, user_id, content)
        target = self.template_for or user_id
        event = {
            "type": MEMBER,
            "room_id": room_id,
            "sender": target,
            "state_key": target,
            "content": content,
            "origin": self.name,
            "origin_server_ts": 1_800_000_000_000,
            "depth": max(room.pdus[tip]["depth"] for tip in tips) + 1,
            "prev_events": tips,
            "auth_events": sorted(state[key] for key in keys if key in state),
        }
        return json_response({"room_version": version.identifier, "event": event})

    def _send_join(
        self, room_id: str, event_id: str, pdu: dict[str, Any], *, omit_members: bool = False
    ) -> HttpResponse:
        room = self.room(room_id)
        version = room.room_version
        assert PDUEvent(pdu, version).event_id == event_id
        answer: dict[str, Any] = {"origin": self.name, "members_omitted": False}
        if "join_authorised_via_users_server" in pdu["content"]:
            pdu = self.server.sign(pdu, version)
            answer["event"] = pdu
        room.add(pdu)
        self.joins.append(event_id)
        if event_id in room.reference.rejected:
            return _error(403, "M_FORBIDDEN", room.reference.rejected[event_id])
        before = room.reference.state_before[event_id]
        state_ids = sorted(before.values())
        chain_ids = room.reference.auth_chain_ids([*state_ids, event_id]) - {event_id}
        if omit_members and self.partial:
            joiner = pdu["state_key"]
            state_ids = sorted(
                e for (etype, skey), e in before.items() if etype != MEMBER or skey == joiner
            )
            chain_ids = room.reference.auth_chain_ids([*state_ids, event_id]) - {event_id}
            chain_ids -= set(state_ids)
            answer["members_omitted"] = True
            answer["servers_in_room"] = sorted(
                {skey.partition(":")[2] for (etype, skey) in before if etype == MEMBER}
            )
        answer["state"] = [room.pdus[e] for e in state_ids]
        answer["auth_chain"] = [room.pdus[e] for e in sorted(chain_ids)]
        return json_response(answer)

    # --- what this server sent the resident ---------------------------------------------------

    def take_outbound(self) -> list[str]:
        """Add the PDUs this server queued for the resident to its rooms, in order, as the
        outbound queue would have delivered them; their event IDs."""
        rows = OutboundPDU.objects.filter(destination__server_name=self.name).order_by("id")
        taken = []
        for row in rows:
            room = self.room(row.room_id)
            if PDUEvent(row.pdu, room.room_version).event_id not in room.pdus:
                room.add(row.pdu)
            taken.append(row.event_id)
        rows.delete()
        return taken


class ResidentNetwork:
    """The fake network's sends, answered by the residents on it."""

    def __init__(self, network: FakeNetwork) -> None:
        self.network = network
        self.residents: dict[str, Resident] = {}

    def add(self, server: RemoteServer) -> Resident:
        resident = Resident(self.network, server)
        self.residents[server.server_name] = resident
        return resident

    def send(self, target: Target, method: str, path: str, **kwargs: Any) -> HttpResponse:
        resident = self.residents.get(target.host_header)
        if resident is None or path.startswith("/_matrix/key/"):
            return self.network.send(target, method, path, **kwargs)
        return resident.answer(method, path, kwargs.get("headers") or {}, kwargs.get("body"))


@pytest.fixture
def residents(network: FakeNetwork, monkeypatch: pytest.MonkeyPatch) -> ResidentNetwork:
    """Sends to the residents added to it go to them; the rest to the fake network."""
    fake = ResidentNetwork(network)
    monkeypatch.setattr(client, "send", fake.send)
    return fake
