"""The /send endpoint of the fake network's servers (tests.federation.helpers): ``Inbox``
checks the X-Matrix signature of every PUT /_matrix/federation/v1/send/{txnId}, records the
transaction and answers as told (200 unless a test says otherwise)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings

from federation import client
from federation.keys import server_signing_key
from federation.transport import HttpResponse, Target, TransportError
from protocol.events import Event
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.x_matrix import parse_authorization, verify_request
from tests.federation.helpers import CAROL, FakeNetwork, json_response

DAVE = "dave.example:8448"
SEND = "/_matrix/federation/v1/send/"
# Event IDs are the same in every room version from 4 on.
V11 = KNOWN_ROOM_VERSIONS["11"]


def pdu_id(pdu: dict[str, Any]) -> str:
    return Event(pdu, V11).event_id


class Inbox:
    """The /send endpoint of the fake network's servers."""

    def __init__(self, network: FakeNetwork) -> None:
        self.network = network
        # (destination, txnId, body) of every /send request, answered or not.
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        # What each server answers (200 unless set); None: the request is lost in
        # the network (no answer).
        self.status: dict[str, int | None] = {}
        # Called when a request arrives, before it is answered.
        self.on_request: Any = None

    def send(self, target: Target, method: str, path: str, **kwargs: Any) -> HttpResponse:
        if not path.startswith(SEND):
            return self.network.send(target, method, path, **kwargs)
        server = target.host_header
        body = json.loads(kwargs["body"])
        auth = parse_authorization(kwargs["headers"]["Authorization"])
        assert method == "PUT"
        assert auth.origin == settings.SERVER_NAME
        assert auth.destination == server
        verify_request(auth, server_signing_key().verify_key, method, path, server, body)
        self.requests.append((server, path.removeprefix(SEND), body))
        if self.on_request is not None:
            self.on_request()
        status = self.status.get(server, 200)
        if status is None or server not in self.network.servers:
            raise TransportError(f"{server}: connection refused")
        if status != 200:
            return json_response({"errcode": "M_UNKNOWN", "error": "busy"}, status)
        return json_response({"pdus": {pdu_id(p): {} for p in body["pdus"]}})

    def received(self, server: str = CAROL) -> list[str]:
        """The event IDs ``server`` was sent, in order, counting each transaction once."""
        seen: set[str] = set()
        ids: list[str] = []
        for destination, txn_id, body in self.requests:
            if destination == server and txn_id not in seen:
                seen.add(txn_id)
                ids.extend(pdu_id(p) for p in body["pdus"])
        return ids


@pytest.fixture
def inbox(network: FakeNetwork, monkeypatch: pytest.MonkeyPatch) -> Inbox:
    """Sends to carol and dave go to an Inbox; both are on the network."""
    network.add(CAROL)
    network.add(DAVE)
    box = Inbox(network)
    monkeypatch.setattr(client, "send", box.send)
    return box
