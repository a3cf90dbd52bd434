"""Outbound connections: only to public addresses unless the operator says otherwise, over
TLS verified with the system's authorities and the operator's CA file."""

from __future__ import annotations

import functools
import http.server
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from config.tls import ensure_tls_files
from federation import transport
from federation.transport import Target, TransportError, send
from tests.federation.ca import https_server, issue_certificate
from tests.federation.helpers import self_signed_certificate


@pytest.fixture
def local_http() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1 answering every GET with a JSON object."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ok": true}' if self.path != "/big" else b"x" * 5000
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "localhost"]
)
def test_discovered_targets_on_private_addresses_are_refused(host: str) -> None:
    target = Target("https", host, 8448, host, host)
    with pytest.raises(TransportError, match="not a public address"):
        send(target, "GET", "/_matrix/key/v2/server", timeout_s=1, max_bytes=1000)


def test_an_operator_override_may_point_anywhere(local_http: int) -> None:
    target = Target("http", "127.0.0.1", local_http, "127.0.0.1", "x", trusted=True)
    response = send(target, "GET", "/", timeout_s=5, max_bytes=1000)
    assert (response.status, response.body) == (200, b'{"ok": true}')
    assert response.headers["content-type"] == "application/json"


def test_the_allowlist_opens_private_ranges(local_http: int, settings: Any) -> None:
    settings.FEDERATION_IP_ALLOWLIST = ["127.0.0.0/8"]
    target = Target("http", "127.0.0.1", local_http, "127.0.0.1", "x")
    assert send(target, "GET", "/", timeout_s=5, max_bytes=1000).status == 200


def test_answers_are_bounded_in_size(local_http: int) -> None:
    target = Target("http", "127.0.0.1", local_http, "127.0.0.1", "x", trusted=True)
    with pytest.raises(TransportError, match="too large"):
        send(target, "GET", "/big", timeout_s=5, max_bytes=1000)


def test_nothing_listening_is_a_transport_error() -> None:
    target = Target("http", "127.0.0.1", 1, "127.0.0.1", "x", trusted=True)
    with pytest.raises(TransportError):
        send(target, "GET", "/", timeout_s=2, max_bytes=1000)


def test_a_certificate_no_authority_signed_is_refused(tmp_path: Path, settings: Any) -> None:
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def handshake() -> None:
        raw, _ = listener.accept()
        with suppress(OSError):
            context.wrap_socket(raw, server_side=True).close()
        raw.close()

    thread = threading.Thread(target=handshake, daemon=True)
    thread.start()
    settings.FEDERATION_IP_ALLOWLIST = ["127.0.0.0/8"]
    target = Target("https", "127.0.0.1", port, "localhost", "localhost")

    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        send(target, "GET", "/", timeout_s=5, max_bytes=1000)
    thread.join(timeout=5)
    listener.close()


@pytest.fixture
def private_ca_server(tmp_path: Path, settings: Any) -> Iterator[tuple[Target, Path]]:
    """An HTTPS server on loopback whose certificate a test authority signed for
    "localhost"; (a target for it, the authority's certificate)."""
    issued = issue_certificate(tmp_path, ["localhost"])
    settings.FEDERATION_IP_ALLOWLIST = ["127.0.0.0/8"]
    with https_server(issued.cert, issued.key) as port:
        yield Target("https", "127.0.0.1", port, "localhost", f"localhost:{port}"), issued.ca_cert


def test_a_private_authority_is_refused_without_the_ca_file(
    private_ca_server: tuple[Target, Path],
) -> None:
    target, _ca = private_ca_server
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        send(target, "GET", "/", timeout_s=5, max_bytes=1000)


def test_the_ca_file_adds_an_authority(
    private_ca_server: tuple[Target, Path], settings: Any
) -> None:
    target, ca = private_ca_server
    settings.FEDERATION_CA_FILE = str(ca)
    response = send(target, "GET", "/", timeout_s=5, max_bytes=1000)
    assert (response.status, response.body) == (200, b'{"ok": true}')


def test_the_ca_file_still_checks_the_name(
    private_ca_server: tuple[Target, Path], settings: Any
) -> None:
    target, ca = private_ca_server
    settings.FEDERATION_CA_FILE = str(ca)
    # The authority is trusted, but its certificate is for localhost, not this name.
    other_name = Target("https", "127.0.0.1", target.port, "other.example", "other.example")
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        send(other_name, "GET", "/", timeout_s=5, max_bytes=1000)


def test_the_ca_file_keeps_the_system_authorities(tmp_path: Path, settings: Any) -> None:
    issued = issue_certificate(tmp_path, ["localhost"])
    settings.FEDERATION_CA_FILE = str(issued.ca_cert)
    context = transport.tls_context()
    system = ssl.create_default_context()
    assert context.cert_store_stats()["x509_ca"] == system.cert_store_stats()["x509_ca"] + 1


def test_verification_off_accepts_any_certificate_and_says_so_once(
    private_ca_server: tuple[Target, Path],
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, _ca = private_ca_server
    settings.FEDERATION_VERIFY_TLS = False
    # As in a fresh process: nothing warned yet.
    transport._warn_unverified_once.cache_clear()
    monkeypatch.setattr(
        transport,
        "_tls_context",
        functools.lru_cache(maxsize=4)(transport._tls_context.__wrapped__),
    )
    with caplog.at_level(logging.WARNING, logger="federation.transport"):
        for _ in range(2):
            response = send(target, "GET", "/", timeout_s=5, max_bytes=1000)
            assert response.status == 200
    warnings = [r for r in caplog.records if r.getMessage() == transport.UNVERIFIED_TLS_WARNING]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_generated_certificates_of_two_servers_share_one_ca_file(
    tmp_path: Path, settings: Any
) -> None:
    """The README's two servers on one machine: both self-signed certificates for
    localhost in one CA file, each server's verified (neither hides the other)."""
    first, _ = ensure_tls_files(None, None, tmp_path / "a", ["localhost", "127.0.0.1"])
    second, _ = ensure_tls_files(None, None, tmp_path / "b", ["localhost", "127.0.0.1"])
    ca_file = tmp_path / "local-federation-ca.pem"
    ca_file.write_bytes(first.cert.read_bytes() + second.cert.read_bytes())
    settings.FEDERATION_CA_FILE = str(ca_file)
    settings.FEDERATION_IP_ALLOWLIST = ["127.0.0.0/8"]
    for files in (first, second):
        with https_server(files.cert, files.key) as port:
            target = Target("https", "127.0.0.1", port, "localhost", f"localhost:{port}")
            assert send(target, "GET", "/", timeout_s=5, max_bytes=1000).status == 200
