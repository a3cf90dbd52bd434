"""Servers that federate for real, on loopback, for interop tests: Trellis with its TLS
federation listener, Synapse with one, and a small client-server API client to drive
either through its own client API.

Each server is named ``localhost:<its TLS port>``, so the others find it by the spec's
discovery (a host with an explicit port) at 127.0.0.1. Every certificate is self-signed:
Trellis trusts the others' as authorities (``TRELLIS_FEDERATION_CA_FILE``), Synapse is told
not to verify (``federation_verify_certificates: false``). Nothing leaves the machine.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.federation.helpers import self_signed_certificate
from tests.live.conftest import (
    LiveServer,
    backend_environ,
    free_port,
    start_homeserver,
    stop_homeserver,
)
from tests.live.synapse import FederationTls, SynapsePeer, start_synapse, stop_synapse

T = TypeVar("T")

LOOPBACK = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class Trellis:
    server: LiveServer
    federation_port: int
    cert: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def server_name(self) -> str:
        return self.server.server_name


def certificate_for(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    return self_signed_certificate(directory)


def start_federating_trellis(
    data_dir: Path,
    backend: dict[str, str],
    *,
    federation_port: int,
    cert: tuple[Path, Path],
    trusted: Iterable[Path] = (),
    environ: dict[str, str] | None = None,
    worker: bool = True,
) -> Trellis:
    """Trellis named ``localhost:<federation_port>``, listening there over TLS with
    ``cert``, trusting the PEM certificates ``trusted`` for its outbound requests."""
    ca_file = data_dir / "federation-ca.pem"
    ca_file.write_text("".join(Path(path).read_text() for path in trusted))
    settings = {
        "TRELLIS_FEDERATION_BIND": f"127.0.0.1:{federation_port}",
        "TRELLIS_TLS_CERT": str(cert[0]),
        "TRELLIS_TLS_KEY": str(cert[1]),
        "TRELLIS_FEDERATION_IP_ALLOWLIST": LOOPBACK,
        **({"TRELLIS_FEDERATION_CA_FILE": str(ca_file)} if trusted else {}),
        **(environ or {}),
    }
    server = start_homeserver(
        data_dir,
        backend,
        server_name=f"localhost:{federation_port}",
        environ=settings,
        worker=worker,
    )
    return Trellis(server=server, federation_port=federation_port, cert=cert[0])


def start_federating_synapse(data: Path, *, federation_port: int | None = None) -> SynapsePeer:
    """Synapse with its client API on a plain port and a TLS federation listener,
    named ``localhost:<federation port>``."""
    cert, key = certificate_for(data / "tls")
    tls = FederationTls(port=federation_port or free_port(), cert=cert, key=key)
    return start_synapse(data / "synapse", free_port(), federation_tls=tls)


def eventually(probe: Callable[[], T | None], *, timeout: float = 60, what: str = "") -> T:
    """Poll ``probe`` until it returns something other than None (or False); a client
    error (e.g. a 404 for a state event that has not arrived yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except ClientError as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what or probe}: last {last!r}")


class ClientError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode")


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass
class Client:
    """One user on a server, through its client-server API (any homeserver)."""

    base_url: str
    user_id: str = ""
    token: str = ""
    txn: int = field(default=0)

    @classmethod
    def register(cls, base_url: str, localpart: str) -> Client:
        client = cls(base_url)
        body = {
            "username": localpart,
            "password": "correct horse battery staple",
            "auth": {"type": "m.login.dummy"},
        }
        answer = client.request("POST", "/_matrix/client/v3/register", body)
        client.user_id, client.token = answer["user_id"], answer["access_token"]
        return client

    def request(
        self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                loaded: dict[str, Any] = json.loads(response.read() or b"{}")
                return loaded
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                detail = json.loads(raw)
            except ValueError:
                detail = {"raw": raw.decode(errors="replace")}
            raise ClientError(error.code, detail) from None

    # Rooms

    def create_room(self, **body: Any) -> str:
        room_id: str = self.request("POST", "/_matrix/client/v3/createRoom", body)["room_id"]
        return room_id

    def join(self, room_id_or_alias: str, via: Iterable[str] = ()) -> str:
        query = {"via": list(via), "server_name": list(via)} if via else None
        answer = self.request(
            "POST", f"/_matrix/client/v3/join/{quote(room_id_or_alias)}", {}, query=query
        )
        room_id: str = answer["room_id"]
        return room_id

    def invite(self, room_id: str, user_id: str) -> None:
        self.request(
            "POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/invite", {"user_id": user_id}
        )

    def leave(self, room_id: str) -> None:
        self.request("POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/leave", {})

    def send(self, room_id: str, body: str, event_type: str = "m.room.message") -> str:
        self.txn += 1
        answer = self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/t{self.txn}-{time.time()}",
            {"msgtype": "m.text", "body": body},
        )
        event_id: str = answer["event_id"]
        return event_id

    def set_state(
        self, room_id: str, event_type: str, content: dict[str, Any], key: str = ""
    ) -> str:
        answer = self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{quote(key)}",
            content,
        )
        event_id: str = answer["event_id"]
        return event_id

    def state(self, room_id: str) -> list[dict[str, Any]]:
        answer: Any = self.request("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state")
        return list(answer)

    def state_event(self, room_id: str, event_type: str, key: str = "") -> dict[str, Any]:
        return self.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{quote(key)}"
        )

    def joined_members(self, room_id: str) -> set[str]:
        answer = self.request("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        return set(answer["joined"])

    def messages(self, room_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The room's timeline as this server shows it, oldest first (every page)."""
        chunk: list[dict[str, Any]] = []
        query: dict[str, Any] = {"dir": "b", "limit": min(limit, 100)}
        while len(chunk) < limit:
            answer = self.request(
                "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages", query=query
            )
            chunk.extend(answer.get("chunk", []))
            if not answer.get("chunk") or "end" not in answer:
                break
            query["from"] = answer["end"]
        return list(reversed(chunk))

    def texts(self, room_id: str) -> list[str]:
        return [
            event["content"]["body"]
            for event in self.messages(room_id)
            if event["type"] == "m.room.message" and "body" in event.get("content", {})
        ]

    def typing(self, room_id: str, typing: bool = True) -> None:
        self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/typing/{quote(self.user_id)}",
            {"typing": typing, "timeout": 30000},
        )

    def receipt(self, room_id: str, event_id: str) -> None:
        self.request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
            {},
        )

    def sync(
        self, since: str | None = None, timeout_ms: int = 0, filter: str | None = None
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"timeout": timeout_ms}
        if since:
            query["since"] = since
        if filter:
            query["filter"] = filter
        return self.request("GET", "/_matrix/client/v3/sync", query=query)

    def set_alias(self, alias: str, room_id: str) -> None:
        self.request(
            "PUT", f"/_matrix/client/v3/directory/room/{quote(alias)}", {"room_id": room_id}
        )

    def profile(self, user_id: str) -> dict[str, Any]:
        return self.request("GET", f"/_matrix/client/v3/profile/{quote(user_id)}")


class Network:
    """Trellis (``home``) with Synapse and a second Trellis as the other servers."""

    def __init__(self, home: Trellis, synapse: SynapsePeer, other: Trellis) -> None:
        self.home = home
        self.synapse = synapse
        self.other = other

    def peer(self, kind: str) -> tuple[str, str]:
        """(client URL, server name) of the other server of that kind."""
        if kind == "synapse":
            return self.synapse.url, self.synapse.server_name
        return self.other.url, self.other.server_name


@contextmanager
def federation_network(root: Path) -> Iterator[Network]:
    """Trellis (``home``), Synapse and a second Trellis, federating; stopped after."""
    synapse = start_federating_synapse(root / "synapse")
    home_cert = certificate_for(root / "home-tls")
    other_cert = certificate_for(root / "other-tls")
    assert synapse.federation_cert is not None
    try:
        with (
            # Slots (Redis databases on CI's second pass) no other live server uses: this
            # network lives for the whole session, beside the other live tests' servers.
            backend_environ(root / "home", slot=6) as home_backend,
            backend_environ(root / "other", slot=3) as other_backend,
        ):
            (root / "home").mkdir(exist_ok=True)
            (root / "other").mkdir(exist_ok=True)
            home_port, other_port = free_port(), free_port()
            home = start_federating_trellis(
                root / "home",
                home_backend,
                federation_port=home_port,
                cert=home_cert,
                trusted=[synapse.federation_cert, other_cert[0]],
            )
            try:
                other = start_federating_trellis(
                    root / "other",
                    other_backend,
                    federation_port=other_port,
                    cert=other_cert,
                    trusted=[home_cert[0]],
                )
                try:
                    yield Network(home, synapse, other)
                finally:
                    stop_homeserver(other.server)
            finally:
                stop_homeserver(home.server)
    finally:
        stop_synapse(synapse)


class SyncStream:
    """A client's /sync, followed incrementally."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.since: str | None = client.sync()["next_batch"]

    def wait_for(self, what: str, found: Any, timeout: float = 60) -> Any:
        def probe() -> Any:
            answer = self.client.sync(self.since, timeout_ms=2000)
            self.since = answer["next_batch"]
            return found(answer)

        return eventually(probe, timeout=timeout, what=what)
