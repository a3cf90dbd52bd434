"""Another server's users and their keys, as the tests play them.

``KeyServer`` puts a fake server on the network (tests.federation.helpers) that answers
POST /user/keys/query, POST /user/keys/claim and GET /user/devices/{userId} from the
devices and cross-signing keys of its users (made with tests.e2ee.helpers, so they are
signed as a real client signs them), recording every request. ``join_room`` makes one of
its users a member of a local room (a signed PDU through the event pipeline), and
``edu`` / ``put_edus`` deliver EDUs as the server would, in a signed PUT /send.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.conftest import MatrixTestClient, Persona
from tests.e2ee.helpers import CrossSigning, Device
from tests.federation.helpers import FakeNetwork, FakeServer, json_response
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed, remote_pdu

USER_KEYS_QUERY = f"{F}/user/keys/query"
USER_KEYS_CLAIM = f"{F}/user/keys/claim"
USER_DEVICES = f"{F}/user/devices/"

_txn_ids = itertools.count(1)


def remote_device(user_id: str, device_id: str) -> Device:
    """A device of a remote user, with its own ed25519 key."""
    return Device(Persona(user_id[1:].split(":")[0], "", user_id, "", device_id))


@dataclass
class RemoteUser:
    user_id: str
    devices: dict[str, Device] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    cross_signing: CrossSigning | None = None
    one_time_keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_device(self, device_id: str, name: str | None = None) -> Device:
        device = remote_device(self.user_id, device_id)
        self.devices[device_id] = device
        if name is not None:
            self.names[device_id] = name
        return device

    def keys_of(self, device_id: str) -> dict[str, Any]:
        keys = self.devices[device_id].device_keys()
        if device_id in self.names:
            keys["unsigned"] = {"device_display_name": self.names[device_id]}
        return keys


class KeyServer:
    """A remote homeserver's key endpoints (see the module's docstring)."""

    def __init__(self, network: FakeNetwork, server_name: str) -> None:
        self.server_name = server_name
        self.fake: FakeServer = network.servers.get(server_name) or network.add(server_name)
        self.fake.handler = self.handle
        self.remote = RemoteServer(server_name)
        self.remote.install_keys()
        self.users: dict[str, RemoteUser] = {}
        self.stream_id = 0
        # (method, path, body) of each key request this server was sent.
        self.requests: list[tuple[str, str, Any]] = []
        # Set to answer every key request with this status instead.
        self.failing_with: int | None = None

    def user(self, localpart: str) -> RemoteUser:
        user_id = f"@{localpart}:{self.server_name}"
        return self.users.setdefault(user_id, RemoteUser(user_id))

    def key_requests(self, path_prefix: str = "") -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[1].startswith(path_prefix)]

    def handle(self, method: str, path: str, body: Any) -> Any:
        if not path.startswith((USER_KEYS_QUERY, USER_KEYS_CLAIM, USER_DEVICES)):
            return None
        self.requests.append((method, path, body))
        if self.failing_with is not None:
            return json_response({"errcode": "M_UNKNOWN", "error": "down"}, self.failing_with)
        if path == USER_KEYS_QUERY:
            return json_response(self.keys_query(body["device_keys"]))
        if path == USER_KEYS_CLAIM:
            return json_response(self.keys_claim(body["one_time_keys"]))
        return json_response(self.user_devices(unquote(path.removeprefix(USER_DEVICES))))

    def keys_query(self, wanted: dict[str, list[str]]) -> dict[str, Any]:
        answer: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        for user_id, devices in wanted.items():
            user = self.users.get(user_id)
            if user is None:
                continue
            answer["device_keys"][user_id] = {
                device_id: user.keys_of(device_id)
                for device_id in user.devices
                if not devices or device_id in devices
            }
            if user.cross_signing is not None:
                answer["master_keys"][user_id] = user.cross_signing.master_key()
                answer["self_signing_keys"][user_id] = user.cross_signing.self_signing_key()
        return answer

    def keys_claim(self, wanted: dict[str, dict[str, str]]) -> dict[str, Any]:
        claimed: dict[str, Any] = {}
        for user_id, by_device in wanted.items():
            user = self.users.get(user_id)
            for device_id in by_device:
                if user is not None and device_id in user.one_time_keys:
                    claimed.setdefault(user_id, {})[device_id] = user.one_time_keys.pop(device_id)
        return {"one_time_keys": claimed}

    def user_devices(self, user_id: str) -> dict[str, Any]:
        user = self.users[user_id]
        devices = []
        for device_id in user.devices:
            entry: dict[str, Any] = {"device_id": device_id, "keys": user.keys_of(device_id)}
            entry["keys"].pop("unsigned", None)
            if device_id in user.names:
                entry["device_display_name"] = user.names[device_id]
            devices.append(entry)
        answer: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": self.stream_id,
            "devices": devices,
        }
        if user.cross_signing is not None:
            answer["master_key"] = user.cross_signing.master_key()
            answer["self_signing_key"] = user.cross_signing.self_signing_key()
        return answer

    # As the server would tell others.

    def device_update(
        self, user: RemoteUser, device_id: str, *, deleted: bool = False, **overrides: Any
    ) -> dict[str, Any]:
        """The m.device_list_update for a change of ``device_id``, next in the chain."""
        prev = self.stream_id
        self.stream_id += 1
        content: dict[str, Any] = {
            "user_id": user.user_id,
            "device_id": device_id,
            "stream_id": self.stream_id,
            "prev_id": [prev] if prev else [],
        }
        if deleted:
            content["deleted"] = True
        else:
            content["keys"] = user.devices[device_id].device_keys()
            if device_id in user.names:
                content["device_display_name"] = user.names[device_id]
        content.update(overrides)
        return {"edu_type": "m.device_list_update", "content": content}

    def put_edus(self, api: MatrixTestClient, *edus: dict[str, Any]) -> None:
        body = {
            "origin": self.server_name,
            "origin_server_ts": 1,
            "pdus": [],
            "edus": list(edus),
        }
        got = fed(api, self.remote, "PUT", f"{F}/send/keys{next(_txn_ids)}", body)
        assert got.status == 200, got.body

    def join_room(self, room_id: str, user: RemoteUser) -> None:
        from rooms.services.incoming import receive_pdu

        member = remote_pdu(
            room_id,
            self.remote,
            user.user_id,
            "m.room.member",
            {"membership": "join"},
            user.user_id,
        )
        receive_pdu(member, origin=self.server_name)

    def leave_room(self, room_id: str, user: RemoteUser) -> None:
        from rooms.services.incoming import receive_pdu

        member = remote_pdu(
            room_id,
            self.remote,
            user.user_id,
            "m.room.member",
            {"membership": "leave"},
            user.user_id,
        )
        receive_pdu(member, origin=self.server_name)
