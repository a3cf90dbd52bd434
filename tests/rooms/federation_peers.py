"""Remote servers that answer this server's membership handshakes, on the fake network.

A ``Peer`` is a ``RemoteServer`` (tests/graph/remote.py) answering what this server asks
of it for invites and knocks: PUT /invite (v2, v1), GET /make_leave and PUT /send_leave,
GET /make_knock and PUT /send_knock, GET /query/directory. Templates come from its
``RemoteRoom``s (built on the room's tips, the auth events the room version selects, as a
resident server builds them), and what comes back is added to the room's graph (checked
by the room's reference). Every request must carry this server's valid X-Matrix
signature. A test may make a peer refuse (``refuse``), answer only v1 (``v1_only``) or
countersign something else (``tamper``); an unreachable peer is left off the network.

``peers`` puts them in front of the ``network`` fixture (tests/federation/helpers.py):
requests to other hosts go on to it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.conf import settings

from federation import client
from federation.keys import server_signing_key
from federation.transport import HttpResponse, Target, TransportError
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.x_matrix import parse_authorization, verify_request
from tests.federation.helpers import FakeNetwork, json_response
from tests.graph.remote import RemoteRoom, RemoteServer

V1 = "/_matrix/federation/v1/"
V2 = "/_matrix/federation/v2/"


@dataclass
class Peer:
    server: RemoteServer
    # (method, path, body) of every request it was sent.
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    # path prefix (e.g. "/_matrix/federation/v2/invite/") -> (status, errcode): refused.
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)
    reachable: bool = True
    # Answer v2 invite and send_leave requests with 404, as an old server would.
    v1_only: bool = False
    # Changes the invite it countersigns (a malicious or broken server).
    tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # alias -> (room ID, servers), for GET /query/directory.
    aliases: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    # Stripped state answered by send_knock, per room (default: create and join rules).
    knock_room_state: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.server.server_name

    def paths(self, prefix: str) -> list[str]:
        return [path for _, path, _ in self.requests if path.startswith(prefix)]

    def answer(self, method: str, path: str, body: Any) -> HttpResponse:
        self.requests.append((method, path, body))
        for prefix, (status, errcode) in self.refuse.items():
            if path.startswith(prefix):
                return json_response({"errcode": errcode, "error": "refused"}, status)
        parts = urlsplit(path)
        segments = [unquote(s) for s in parts.path.split("/")[3:]]
        query = parse_qs(parts.query)
        version, kind, args = segments[0], segments[1], segments[2:]
        if self.v1_only and version == "v2":
            return json_response({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"}, 404)
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            return json_response({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"}, 404)
        return handler(method, version, args, query, body)

    # --- the endpoints -------------------------------------------------------------------

    def _invite(self, method: str, version: str, args: list[str], query: Any, body: Any) -> Any:
        pdu = body["event"] if version == "v2" else body
        room_version = KNOWN_ROOM_VERSIONS[body["room_version"] if version == "v2" else "1"]
        signed = self.server.sign({k: v for k, v in pdu.items() if k != "unsigned"}, room_version)
        if self.tamper is not None:
            signed = self.tamper(signed)
        event = {"event": signed}
        return json_response(event if version == "v2" else [200, event])

    def _make_leave(
        self, method: str, version: str, args: list[str], query: Any, body: Any
    ) -> Any:
        room_id, user_id = args
        return json_response(self._template(room_id, user_id, "leave"))

    def _send_leave(
        self, method: str, version: str, args: list[str], query: Any, body: Any
    ) -> Any:
        self._room(body["room_id"]).add(body)
        return json_response({} if version == "v2" else [200, {}])

    def _make_knock(
        self, method: str, version: str, args: list[str], query: Any, body: Any
    ) -> Any:
        room_id, user_id = args
        room = self._room(room_id)
        if room.room_version.identifier not in query.get("ver", []):
            error = {"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "no"}
            return json_response({**error, "room_version": room.room_version.identifier}, 400)
        return json_response(self._template(room_id, user_id, "knock"))

    def _send_knock(
        self, method: str, version: str, args: list[str], query: Any, body: Any
    ) -> Any:
        room = self._room(body["room_id"])
        room.add(body)
        state = self.knock_room_state.get(room.room_id)
        if state is None:
            state = [room.pdus[room.id(name)] for name in ("CREATE", "JR")]
        return json_response({"knock_room_state": copy.deepcopy(state)})

    def _query(self, method: str, version: str, args: list[str], query: Any, body: Any) -> Any:
        alias = query.get("room_alias", [""])[0]
        if alias not in self.aliases:
            return json_response({"errcode": "M_NOT_FOUND", "error": "no alias"}, 404)
        room_id, servers = self.aliases[alias]
        return json_response({"room_id": room_id, "servers": servers})

    # --- helpers -------------------------------------------------------------------------

    def _room(self, room_id: str) -> RemoteRoom:
        return self.server.rooms[room_id]

    def _template(self, room_id: str, user_id: str, membership: str) -> dict[str, Any]:
        """A make_* answer: the event as the resident builds it, without hashes and
        signatures (the asking server adds its own)."""
        room = self._room(room_id)
        built = room.build(
            user_id,
            "m.room.member",
            {"membership": membership},
            state_key=user_id,
            signer=self.server,
        )
        template = {k: v for k, v in built.items() if k not in ("hashes", "signatures")}
        return {"room_version": room.room_version.identifier, "event": template}


class Peers:
    """The peers on the network, in front of it."""

    def __init__(self, network: FakeNetwork) -> None:
        self.network = network
        self.peers: dict[str, Peer] = {}

    def add(self, server: RemoteServer, **kwargs: Any) -> Peer:
        server.install_keys()
        peer = Peer(server, **kwargs)
        self.peers[server.server_name] = peer
        return peer

    def send(self, target: Target, method: str, path: str, **kwargs: Any) -> HttpResponse:
        peer = self.peers.get(target.host_header)
        if peer is None or not path.startswith((V1, V2)):
            return self.network.send(target, method, path, **kwargs)
        headers = kwargs.get("headers") or {}
        body = json.loads(kwargs["body"]) if kwargs.get("body") else None
        auth = parse_authorization(headers["Authorization"])
        assert auth.origin == settings.SERVER_NAME
        assert auth.destination == peer.name
        verify_request(auth, server_signing_key().verify_key, method, path, peer.name, body)
        if not peer.reachable:
            raise TransportError(f"{peer.name}: connection refused")
        return peer.answer(method, path, body)


@pytest.fixture
def peers(network: FakeNetwork, monkeypatch: pytest.MonkeyPatch) -> Peers:
    fake = Peers(network)
    monkeypatch.setattr(client, "send", fake.send)
    return fake
