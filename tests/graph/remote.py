"""Remote Matrix servers, played by the tests: real, signed PDUs for a room graph.

A `RemoteServer` has its own ed25519 signing key; `install_keys` stores its verify key where
federation.keyring looks first (federation.models.RemoteServerKey), so the homeserver trusts its
signatures without any network. A `RemoteRoom` is one room's event graph, shared by the remote
servers whose users are in it: each event is signed by its sender's server, hashed and given its
event ID as the room version says (content/server-server-api.md#signing-events). Forks are
sends with explicit `prev` events.

Every event added to the graph is also checked by the room's `Reference` (tests/graph/
reference.py), which says what any correct server must make of it; a `RemoteServer` answers as
the pipeline's EventSource from that reference (GET /event and GET /state_ids).

The forging helpers make what a broken or malicious server would send: a bad signature
(`forge_bad_signature`), a signature by a server other than the sender's (`build(...,
signer=...)`), content changed after hashing (`send(..., content_after_hashing=...)`), and wrong
auth events (`send(..., auth=[...])`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from federation.services import do_store_server_keys
from protocol.auth_rules import StateKey, auth_types_for_event
from protocol.events import Event
from protocol.hashing import add_content_hash, generate_opaque_room_id
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.server_keys import ServerKeys
from protocol.signing import SigningKey, compute_signature, generate_signing_key, sign_event
from tests.graph.reference import Reference

# Keys stay valid until 2100: no test ever needs to fetch them again.
FAR_FUTURE_MS = 4_102_444_800_000
# origin_server_ts of the graphs' events: increasing, so state resolution ties are predictable.
_timestamps = itertools.count(1_700_000_000_000)


def server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class RemoteServer:
    """A remote homeserver: a server name, a signing key, and the rooms it takes part in."""

    def __init__(self, server_name: str, key_version: str = "remote1") -> None:
        self.server_name = server_name
        self.signing_key: SigningKey = generate_signing_key(key_version)
        self.rooms: dict[str, RemoteRoom] = {}

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def install_keys(self) -> None:
        """Store the verify key as if fetched from this server itself, valid far ahead."""
        keys = ServerKeys(
            server_name=self.server_name,
            verify_keys={self.signing_key.key_id: self.signing_key.verify_key},
            old_verify_keys={},
            valid_until_ts=FAR_FUTURE_MS,
        )
        do_store_server_keys(keys, fetched_ts=0, fetched_from=self.server_name)

    def sign(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
        """`pdu` with this server's signature over its redacted form added."""
        return sign_event(pdu, self.server_name, self.signing_key, room_version)

    def create_room(
        self,
        creator: str,
        room_version: str = "11",
        *,
        join_rule: str = "public",
        history_visibility: str = "shared",
    ) -> RemoteRoom:
        """A new room created by `creator` (a user of this server): m.room.create, the
        creator's join, power levels, join rules and history visibility."""
        room = RemoteRoom(KNOWN_ROOM_VERSIONS[room_version], [self])
        room.create(creator, join_rule=join_rule, history_visibility=history_visibility)
        return room

    # --- EventSource (rooms.services.incoming) ---------------------------------------------

    def get_events(self, room_id: str, event_ids: list[str]) -> list[dict]:
        """The PDUs this server has among `event_ids`, as GET /event gives them."""
        room = self.rooms.get(room_id)
        if room is None:
            return []
        return [copy.deepcopy(room.pdus[e]) for e in event_ids if e in room.pdus]

    def get_state_ids(self, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        """As GET /state_ids: the state before `event_id` and the auth chain of that state."""
        room = self.rooms.get(room_id)
        if room is None or event_id not in room.reference.state_before:
            raise KeyError(f"{self.server_name} does not know {event_id} in {room_id}")
        state_ids = sorted(room.reference.state_before[event_id].values())
        return state_ids, sorted(room.reference.auth_chain_ids(state_ids))


class RemoteRoom:
    """One room's event graph, built by remote servers and checked by its `Reference`.

    Events are named for readable tests and failure reports (`id(name)`, `label(event_id)`);
    wherever an event ID is expected, a name may be given instead.
    """

    def __init__(self, room_version: RoomVersion, servers: Iterable[RemoteServer]) -> None:
        self.room_version = room_version
        self.servers: dict[str, RemoteServer] = {}
        self.room_id = ""
        # The PDUs as their servers serve them (content changed after hashing included).
        self.pdus: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.reference = Reference(room_version)
        for server in servers:
            self.add_server(server)

    def add_server(self, server: RemoteServer) -> None:
        """Let `server` sign for its users in this room and answer for the room's events."""
        self.servers[server.server_name] = server
        if self.room_id:
            server.rooms[self.room_id] = self

    # --- names -----------------------------------------------------------------------------

    def id(self, name_or_id: str) -> str:
        return self.names.get(name_or_id, name_or_id)

    def label(self, event_id: str) -> str:
        return self.labels.get(event_id, event_id)

    def labelled(self, event_ids: Iterable[str]) -> set[str]:
        return {self.label(e) for e in event_ids}

    def named_state(self, state: Mapping[StateKey, str]) -> dict[StateKey, str]:
        return {key: self.label(e) for key, e in state.items()}

    # --- building --------------------------------------------------------------------------

    def create(
        self, creator: str, *, join_rule: str = "public", history_visibility: str = "shared"
    ) -> None:
        """The events every room starts with (clients' createRoom order, as a server sends
        them)."""
        version = self.room_version
        if not version.room_id_is_create_event_hash:
            self.room_id = generate_opaque_room_id(server_of(creator))
        content: dict[str, Any] = {"room_version": version.identifier}
        if not version.implicit_room_creator:
            content["creator"] = creator
        self.send(creator, "m.room.create", content, state_key="", prev=[], name="CREATE")
        self.send(creator, "m.room.member", {"membership": "join"}, state_key=creator, name="JOIN")
        # v12: creators have infinite power and must not be listed.
        users = {} if version.creators_have_infinite_power else {creator: 100}
        self.send(creator, "m.room.power_levels", {"users": users}, state_key="", name="POWER")
        self.send(creator, "m.room.join_rules", {"join_rule": join_rule}, state_key="", name="JR")
        self.send(
            creator,
            "m.room.history_visibility",
            {"history_visibility": history_visibility},
            state_key="",
            name="HV",
        )

    def build(
        self,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        prev: Sequence[str] | None = None,
        auth: Sequence[str] | None = None,
        signer: RemoteServer | None = None,
        content_after_hashing: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A signed PDU, not added to the graph.

        `prev`: the prev events (default: the graph's current tips). `auth`: the auth events
        (default: selected from the state before the event, per the auth events selection).
        `signer`: the server signing it (default: the sender's). `content_after_hashing`: the
        content put in after the content hash was computed and before signing, so the hash
        mismatches while the signature, over the redacted form, is valid.
        """
        prev_ids = self.reference.tips() if prev is None else [self.id(p) for p in prev]
        if auth is None:
            state_before = self.reference.state_for_prevs(prev_ids)
            keys = auth_types_for_event(self.room_version, event_type, sender, state_key, content)
            auth_ids = sorted(state_before[key] for key in keys if key in state_before)
        else:
            auth_ids = [self.id(a) for a in auth]
        depth = max((self.pdus[p]["depth"] for p in prev_ids), default=0) + 1
        pdu: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": dict(content),
            "origin_server_ts": next(_timestamps),
            "depth": depth,
            "prev_events": prev_ids,
            "auth_events": auth_ids,
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        is_v12_create = self.room_version.room_id_is_create_event_hash and (
            event_type == "m.room.create"
        )
        if not is_v12_create:
            if not self.room_id:
                raise ValueError("the room has no create event yet")
            pdu["room_id"] = self.room_id
        if not self.room_version.updated_redaction_rules:
            # Before v11 servers sent `origin`; harmless, and kept in the redacted form.
            pdu["origin"] = server_of(sender)
        pdu = add_content_hash(pdu)
        if content_after_hashing is not None:
            pdu["content"] = dict(content_after_hashing)
        server = signer if signer is not None else self.servers[server_of(sender)]
        return server.sign(pdu, self.room_version)

    def add(self, pdu: Mapping[str, Any], name: str | None = None) -> str:
        """Add a PDU to the graph (and to the reference); its event ID."""
        event = self.reference.add(pdu)
        event_id = event.event_id
        self.pdus[event_id] = dict(pdu)
        if name is not None:
            if name in self.names:
                raise ValueError(f"an event is named {name} already")
            self.names[name] = event_id
            self.labels[event_id] = name
        if event.type == "m.room.create":
            self.room_id = event.room_id
            for server in self.servers.values():
                server.rooms[self.room_id] = self
        return event_id

    def send(
        self,
        sender: str,
        event_type: str,
        content: Mapping[str, Any],
        *,
        state_key: str | None = None,
        prev: Sequence[str] | None = None,
        auth: Sequence[str] | None = None,
        name: str | None = None,
        content_after_hashing: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build a PDU (see `build`) and add it to the graph."""
        pdu = self.build(
            sender,
            event_type,
            content,
            state_key=state_key,
            prev=prev,
            auth=auth,
            content_after_hashing=content_after_hashing,
        )
        self.add(pdu, name)
        return pdu

    def member(self, sender: str, target: str, membership: str, **kwargs: Any) -> dict[str, Any]:
        return self.send(
            sender, "m.room.member", {"membership": membership}, state_key=target, **kwargs
        )

    def merge(self, sender: str, name: str = "MERGE") -> dict[str, Any]:
        """A message citing every tip of the graph, so the forks meet."""
        return self.send(sender, "m.room.message", {"body": "merge"}, prev=None, name=name)

    def forge_bad_signature(self, pdu: Mapping[str, Any]) -> dict[str, Any]:
        """`pdu` with its sender's server's signature replaced by one over other bytes
        (valid base64 of the right length; the event ID is unchanged)."""
        server = self.servers[server_of(pdu["sender"])]
        forged = copy.deepcopy(dict(pdu))
        other = {"not": "the event"}
        forged["signatures"][server.server_name][server.signing_key.key_id] = compute_signature(
            other, server.signing_key
        )
        return forged

    # --- reading ---------------------------------------------------------------------------

    def event(self, name_or_id: str) -> Event:
        return self.reference.events[self.id(name_or_id)]

    def delivery_pdus(self) -> list[dict[str, Any]]:
        """Every PDU of the graph, in the order it was added (create first)."""
        return [copy.deepcopy(self.pdus[e]) for e in self.reference.order]
