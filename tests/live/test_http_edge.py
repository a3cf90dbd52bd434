"""The HTTP edge of a real server (config/http_server.py): forwarded addresses believed
only from trusted proxies, secrets kept out of the access log, 414/431 for oversized
heads, slow requests timed out. One server, started as an operator would with
TRELLIS_TRUSTED_PROXIES, rate limits on and short timeouts."""

from __future__ import annotations

import contextlib
import http.client
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import LiveServer, backend_environ, start_homeserver, stop_homeserver

# The loopback network answers on all of 127/8: connecting from 127.0.0.2 is connecting
# from the trusted proxy, from 127.0.0.1 from anyone else.
PROXY = "127.0.0.2"
STRANGER = "127.0.0.1"
HEADER_TIMEOUT_S = 2
IDLE_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("edge")
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(
            data_dir,
            backend,
            environ={
                "TRELLIS_TRUSTED_PROXIES": f"{PROXY}, 10.0.0.0/8",
                "TRELLIS_RATELIMIT": "on",
                "TRELLIS_HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
                "TRELLIS_HTTP_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S),
            },
        )
        try:
            yield server
        finally:
            stop_homeserver(server)


def _address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _request(
    server: LiveServer,
    method: str,
    path: str,
    *,
    source: str = STRANGER,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    host, port = _address(server)
    connection = http.client.HTTPConnection(host, port, timeout=30, source_address=(source, 0))
    try:
        payload = json.dumps(body) if body is not None else None
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def _register(server: LiveServer, *, source: str, forwarded_for: str) -> dict[str, Any]:
    status, body = _request(
        server,
        "POST",
        "/_matrix/client/v3/register",
        source=source,
        headers={"X-Forwarded-For": forwarded_for},
        body={
            "username": f"edge-{secrets.token_hex(4)}",
            "password": "correct horse battery",
            "auth": {"type": "m.login.dummy"},
        },
    )
    assert status == 200, body
    return body


def _devices_ip(server: LiveServer, token: str) -> str:
    status, body = _request(
        server, "GET", "/_matrix/client/v3/devices", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    [device] = body["devices"]
    return str(device["last_seen_ip"])


def _availability_statuses(server: LiveServer, *, source: str, rotate: bool) -> list[int]:
    statuses = []
    for i in range(14):
        forwarded = f"203.0.113.{i + 1}, 10.0.0.5" if rotate else "198.51.100.99, 10.0.0.5"
        status, _ = _request(
            server,
            "GET",
            f"/_matrix/client/v3/register/available?username=free{i}{secrets.token_hex(2)}",
            source=source,
            headers={"X-Forwarded-For": forwarded},
        )
        statuses.append(status)
    return statuses


def test_a_forged_forwarded_address_does_not_escape_the_rate_limit(
    edge_server: LiveServer,
) -> None:
    # "register_available" allows a burst of 10 per client address.
    statuses = _availability_statuses(edge_server, source=STRANGER, rotate=True)

    assert statuses[:10] == [200] * 10
    assert 429 in statuses[10:]


def test_a_trusted_proxy_s_forwarded_address_is_the_client(edge_server: LiveServer) -> None:
    # Each forwarded client has its own bucket...
    assert set(_availability_statuses(edge_server, source=PROXY, rotate=True)) == {200}
    # ...and one client behind the proxy is limited like any other.
    assert 429 in _availability_statuses(edge_server, source=PROXY, rotate=False)


def test_last_seen_ip_and_the_access_log_show_the_real_client(edge_server: LiveServer) -> None:
    forged = _register(edge_server, source=STRANGER, forwarded_for="203.0.113.66")
    proxied = _register(edge_server, source=PROXY, forwarded_for="1.1.1.1, 198.51.100.20")

    assert _devices_ip(edge_server, forged["access_token"]) == STRANGER
    assert _devices_ip(edge_server, proxied["access_token"]) == "198.51.100.20"
    log = edge_server.log()
    assert "198.51.100.20:0 - - [" in log
    assert "203.0.113.66" not in log
    assert "1.1.1.1" not in log


def test_a_query_string_token_is_not_written_to_the_log(edge_server: LiveServer) -> None:
    token = _register(edge_server, source=PROXY, forwarded_for="198.51.100.21")["access_token"]

    status, body = _request(
        edge_server, "GET", f"/_matrix/client/v3/account/whoami?access_token={token}"
    )

    assert status == 200
    assert body["user_id"].startswith("@edge-")
    log = edge_server.log()
    assert "/_matrix/client/v3/account/whoami?access_token=<redacted>" in log
    assert token not in log


def _raw(server: LiveServer, data: bytes) -> socket.socket:
    sock = socket.create_connection(_address(server), timeout=30)
    sock.sendall(data)
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_oversized_heads_get_431_and_414(edge_server: LiveServer) -> None:
    header = b"GET /_matrix/client/versions HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    assert _read_answer(_raw(edge_server, header)) == (
        431,
        {"errcode": "M_TOO_LARGE", "error": "The request's headers are too large"},
    )

    url = b"GET /_matrix/client/versions?" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n"
    assert _read_answer(_raw(edge_server, url))[0] == 414


def test_a_slowloris_head_is_timed_out(edge_server: LiveServer) -> None:
    sock = _raw(edge_server, b"GET /_matrix/client/versions HTTP/1.1\r\n")
    started = time.monotonic()
    sock.settimeout(0.25)
    received = b""
    while not received and time.monotonic() - started < 20:
        with contextlib.suppress(OSError):
            sock.sendall(b"X")
        try:
            received = sock.recv(65536)
        except TimeoutError:
            continue

    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert HEADER_TIMEOUT_S - 0.5 < time.monotonic() - started < HEADER_TIMEOUT_S + 3
    sock.close()


def test_a_stalled_body_is_timed_out(edge_server: LiveServer) -> None:
    started = time.monotonic()
    sock = _raw(
        edge_server, b"POST /_matrix/client/v3/login HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"
    )

    assert _read_answer(sock)[0] == 408
    assert IDLE_TIMEOUT_S - 0.5 < time.monotonic() - started < IDLE_TIMEOUT_S + 3


def test_a_long_poll_outlives_the_idle_timeout(edge_server: LiveServer) -> None:
    token = _register(edge_server, source=PROXY, forwarded_for="198.51.100.22")["access_token"]
    status, body = _request(
        edge_server, "GET", "/_matrix/client/v3/sync", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200

    timeout_ms = (IDLE_TIMEOUT_S + 2) * 1000
    started = time.monotonic()
    status, _ = _request(
        edge_server,
        "GET",
        f"/_matrix/client/v3/sync?since={body['next_batch']}&timeout={timeout_ms}",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert status == 200
    assert time.monotonic() - started >= IDLE_TIMEOUT_S + 1.5
