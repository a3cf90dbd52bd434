"""Two real Trellis servers federating on loopback (README, "Two servers on one
machine"), for the live federation tests.

``federating_pair`` starts both with ``runhomeserver`` (web server and worker): each
listens over TLS for the other on its own port (``TRELLIS_FEDERATION_BIND``), its
server name ``localhost:<that port>``, so each finds the other by the spec's discovery
(an explicit port) at a loopback address, which the allowlist admits. Their
certificates are generated before they start (the self-signed pair Trellis would make
itself) and trusted by both through one CA file, so TLS is verified as in production.

A small JSON client (``Client``) speaks the Client-Server API to either.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from config.tls import certificate_names, ensure_tls_files
from tests.live.conftest import (
    LiveServer,
    backend_environ,
    free_port,
    start_homeserver,
    stop_homeserver,
)

T = TypeVar("T")
# Redis databases 12 and 13 when the tests' own is 11 (tests/live/conftest.py's slots).
PAIR_SLOTS = (2, 3)
LOOPBACK = "127.0.0.0/8,::1/128"


@contextmanager
def federating_pair(
    base_dir: Path, slots: tuple[int, int] = PAIR_SLOTS
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Start two federating servers in directories under ``base_dir``; stop them after."""
    ports = [free_port(), free_port()]
    names = [f"localhost:{port}" for port in ports]
    dirs = [base_dir / "a", base_dir / "b"]
    ca_file = base_dir / "federation-ca.pem"
    certificates = []
    for name, data_dir in zip(names, dirs, strict=True):
        files, _created = ensure_tls_files(
            None, None, data_dir, certificate_names(name, "127.0.0.1")
        )
        certificates.append(files.cert.read_bytes())
    ca_file.write_bytes(b"".join(certificates))
    with ExitStack() as stack:
        servers = []
        for port, name, data_dir, slot in zip(ports, names, dirs, slots, strict=True):
            backend = stack.enter_context(backend_environ(data_dir, slot))
            server = start_homeserver(
                data_dir,
                backend,
                server_name=name,
                environ={
                    "TRELLIS_FEDERATION_BIND": f"127.0.0.1:{port}",
                    "TRELLIS_FEDERATION_CA_FILE": str(ca_file),
                    "TRELLIS_FEDERATION_IP_ALLOWLIST": LOOPBACK,
                },
            )
            stack.callback(stop_homeserver, server)
            servers.append(server)
        yield servers[0], servers[1]


@dataclass
class Client:
    """A user of one live server, over the Client-Server API."""

    server: LiveServer
    user_id: str
    access_token: str

    @classmethod
    def register(cls, server: LiveServer, localpart: str) -> Client:
        body = {
            "username": localpart,
            "password": "correct horse battery",
            "auth": {"type": "m.login.dummy"},
        }
        answer = call(server, "POST", "register", body)
        return cls(server, answer["user_id"], answer["access_token"])

    def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        return call(self.server, method, path, body, token=self.access_token, expect=expect)

    def room(self, room_id: str, *parts: str) -> str:
        return "/".join(["rooms", quote(room_id, safe=""), *(quote(p, safe="") for p in parts)])

    def send(self, room_id: str, body: str, txn_id: str) -> str:
        content = {"msgtype": "m.text", "body": body}
        answer = self.call("PUT", self.room(room_id, "send", "m.room.message", txn_id), content)
        return str(answer["event_id"])

    def messages(self, room_id: str) -> list[dict[str, Any]]:
        """The room's timeline as /messages pages it, oldest first."""
        events: list[dict[str, Any]] = []
        path = self.room(room_id, "messages") + "?dir=b&limit=100"
        token: str | None = None
        while True:
            page = self.call("GET", path + (f"&from={quote(token)}" if token else ""))
            events.extend(page["chunk"])
            token = page.get("end")
            if not page["chunk"] or token is None:
                return list(reversed(events))

    def members(self, room_id: str) -> dict[str, str]:
        answer = self.call("GET", self.room(room_id, "members"))
        return {e["state_key"]: e["content"]["membership"] for e in answer["chunk"]}


def call(
    server: LiveServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    expect: int = 200,
) -> Any:
    """``method /_matrix/client/v3/path``; the JSON answer, which must have ``expect``."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/{path}", data=data, method=method
    )
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    answer = json.loads(raw) if raw else None
    assert status == expect, (method, path, status, answer)
    return answer


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 60) -> T:
    """Poll ``probe`` until it returns something other than None (or fail)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
