"""Other servers, faked: a network in which remote servers answer key requests.

``FakeNetwork`` replaces the one function that puts bytes on the wire
(``federation.transport.send``, as imported by the client and discovery), so everything
above it (discovery, signing, key checking, storing) runs for real. Each remote server
(``carol.example:8448`` and the like: an explicit port, so discovery needs no DNS) has
its own signing key and answers ``GET /_matrix/key/v2/server`` with a self-signed key
response, which a test may spoil.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from federation import client, discovery, srv
from federation.transport import HttpResponse, Target, TransportError
from protocol.server_keys import server_keys_json
from protocol.signing import SigningKey, generate_signing_key
from protocol.x_matrix import format_authorization, sign_request

CAROL = "carol.example:8448"
DAY_MS = 24 * 3600 * 1000


def json_response(obj: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(obj).encode())


@dataclass
class FakeServer:
    server_name: str
    signing_key: SigningKey = field(default_factory=lambda: generate_signing_key("carol1"))
    # Rewrites the key response before it is served (to spoil it).
    mutate_keys: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    reachable: bool = True
    # path -> response, for anything other than the key response.
    routes: dict[str, HttpResponse] = field(default_factory=dict)
    # Answers any request first (method, path, JSON body or None), unless it returns None.
    handler: Callable[[str, str, Any], HttpResponse | None] | None = None

    def key_response(self) -> dict[str, Any]:
        from accounts.clock import now_ms

        obj = server_keys_json(self.server_name, [self.signing_key], now_ms() + DAY_MS)
        return self.mutate_keys(obj) if self.mutate_keys else obj

    def authorization(
        self,
        method: str,
        uri: str,
        *,
        destination: str | None = None,
        content: Any = None,
    ) -> str:
        """An X-Matrix header signing ``method uri`` for us (or ``destination``)."""
        auth = sign_request(
            self.signing_key,
            method,
            uri,
            self.server_name,
            destination or settings.SERVER_NAME,
            content,
        )
        return format_authorization(auth)


@dataclass
class SentRequest:
    target: Target
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None


class FakeNetwork:
    def __init__(self) -> None:
        self.servers: dict[str, FakeServer] = {}
        self.sent: list[SentRequest] = []

    def add(self, server_name: str, **kwargs: Any) -> FakeServer:
        server = FakeServer(server_name, **kwargs)
        self.servers[server_name] = server
        return server

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
        self.sent.append(SentRequest(target, method, path, dict(headers or {}), body))
        server = self.servers.get(target.host_header)
        if server is None or not server.reachable:
            raise TransportError(f"{target.connect_host}: connection refused")
        if server.handler is not None:
            answer = server.handler(method, path, json.loads(body) if body else None)
            if answer is not None:
                return answer
        if path in server.routes:
            return server.routes[path]
        if method == "GET" and path == "/_matrix/key/v2/server":
            return json_response(server.key_response())
        return json_response({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"}, 404)

    def key_fetches(self, server_name: str) -> int:
        return sum(
            1
            for r in self.sent
            if r.target.host_header == server_name and r.path == "/_matrix/key/v2/server"
        )


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> FakeNetwork:
    fake = FakeNetwork()
    monkeypatch.setattr(client, "send", fake.send)
    monkeypatch.setattr(discovery, "send", fake.send)
    # No DNS either: names without a port find no SRV records.
    monkeypatch.setattr(srv, "lookup_srv", lambda name, timeout_s=3.0: [])
    return fake


@pytest.fixture
def carol(network: FakeNetwork) -> FakeServer:
    """A remote server whose keys can be fetched."""
    return network.add(CAROL)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 that no authority signed (cert, key)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own: an authority file holding several of these (one per test server)
    # must not hold two with the same subject, or the wrong one is tried as the issuer.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"test {secrets.token_hex(8)}"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
