"""An identity server of the test's own: a real HTTPS server (a test authority's
certificate for 127.0.0.1, which the test trusts through FEDERATION_CA_FILE) in a
thread, serving the Identity Service API v2 endpoints a homeserver calls, with a small
memory: validated sessions, bindings, stored invites, its keys.

Like sytest's identity server: the access token is "swordfish", lookups are hashed with
the pepper "matrixrocks", stored invites are answered with the display name "Bob" and
the long-term and ephemeral keys. Unlike it, /3pid/unbind checks the homeserver's
X-Matrix signature (with the key the test gives it) and answers 403 without a valid one.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from protocol.signing import SigningKey, VerifyKey, generate_signing_key, sign_json
from protocol.unpadded_base64 import encode_base64, encode_base64_url_safe
from protocol.x_matrix import parse_authorization, verify_request
from tests.federation.ca import issue_certificate

ACCESS_TOKEN = "swordfish"
PEPPER = "matrixrocks"


@dataclass
class IdentityServerDouble:
    homeserver_key: VerifyKey  # whose X-Matrix signatures /unbind accepts
    name: str = ""  # "127.0.0.1:<port>" once started
    ca_file: str = ""  # the authority that signed its certificate, once started
    key: SigningKey = field(default_factory=lambda: generate_signing_key("0"))
    ephemeral: SigningKey = field(default_factory=lambda: generate_signing_key("0"))
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)
    invites: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    # --- what a test does to it ---------------------------------------------------------------

    def validate(self, medium: str, address: str) -> str:
        """A validated session for the address; its sid."""
        sid = f"session_{len(self.sessions)}"
        self.sessions[sid] = (medium, address)
        return sid

    def bind(self, medium: str, address: str, mxid: str) -> None:
        self.bindings[(medium, address)] = mxid

    def public_key(self, key: SigningKey | None = None) -> str:
        return encode_base64((key or self.key).verify_key.encode())

    def signed_invite(
        self, token: str, mxid: str, key: SigningKey | None = None
    ) -> dict[str, Any]:
        """The ``signed`` object of an invite, as the identity server hands it on at bind."""
        return sign_json({"mxid": mxid, "token": token}, self.name, key or self.key)

    def paths(self) -> list[str]:
        return [path for _method, path, _headers, _body in self.requests]

    # --- the endpoints ------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        self.requests.append((method, path, headers, body))
        parts = urlsplit(path)
        route = parts.path.removeprefix("/_matrix/identity/v2")
        if route == "/pubkey/isvalid":
            key = parse_qs(parts.query).get("public_key", [""])[0]
            known = {self.public_key(), self.public_key(self.ephemeral)} - self.revoked
            return 200, {"valid": key in known}
        if route == "/3pid/unbind":
            return self.unbind(method, path, headers, body)
        if headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return 401, {"errcode": "M_UNAUTHORIZED", "error": "Unrecognised access token"}
        if route == "/3pid/bind":
            if body.get("sid") not in self.sessions:
                return 400, {"errcode": "M_NO_VALID_SESSION", "error": "No valid session"}
            medium, address = self.sessions[body["sid"]]
            self.bind(medium, address, body["mxid"])
            answer = {"medium": medium, "address": address, "mxid": body["mxid"]}
            return 200, sign_json(
                {**answer, "not_before": 0, "not_after": 1, "ts": 0}, self.name, self.key
            )
        if route == "/3pid/getValidated3pid":
            sid = parse_qs(parts.query).get("sid", [""])[0]
            if sid not in self.sessions:
                return 400, {"errcode": "M_SESSION_NOT_VALIDATED", "error": "Not validated"}
            medium, address = self.sessions[sid]
            return 200, {"medium": medium, "address": address, "validated_at": 1234}
        if route == "/hash_details":
            return 200, {"lookup_pepper": PEPPER, "algorithms": ["none", "sha256"]}
        if route == "/lookup":
            hashes = {
                encode_base64_url_safe(
                    hashlib.sha256(f"{address} {medium} {PEPPER}".encode()).digest()
                ): mxid
                for (medium, address), mxid in self.bindings.items()
            }
            return 200, {"mappings": {h: hashes[h] for h in body["addresses"] if h in hashes}}
        if route == "/store-invite":
            token = f"token{len(self.invites)}"
            self.invites.append({**body, "token": token})
            url = f"https://{self.name}/_matrix/identity/v2/pubkey/isvalid"
            keys = [self.public_key(), self.public_key(self.ephemeral)]
            return 200, {
                "token": token,
                "display_name": "Bob",
                "public_keys": [{"public_key": k, "key_validity_url": url} for k in keys],
            }
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}

    def unbind(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        try:
            auth = parse_authorization(headers.get("authorization", ""))
            verify_request(auth, self.homeserver_key, method, path, self.name, body)
        except ValueError:
            return 403, {"errcode": "M_FORBIDDEN", "error": "Bad X-Matrix signature"}
        threepid = (body["threepid"]["medium"], body["threepid"]["address"])
        if self.bindings.get(threepid) != body["mxid"]:
            return 404, {"errcode": "M_NOT_FOUND", "error": "No such binding"}
        del self.bindings[threepid]
        return 200, {}


@contextmanager
def running(double: IdentityServerDouble, directory: Path) -> Iterator[IdentityServerDouble]:
    """Serve ``double`` over HTTPS on 127.0.0.1; yields it with its name set. The caller
    trusts the returned authority (``double.ca_file``)."""
    issued = issue_certificate(directory, ["127.0.0.1"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = double.handle(self.command, self.path, headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    double.name = f"127.0.0.1:{server.server_address[1]}"
    double.ca_file = str(issued.ca_cert)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
