"""The HTTP edge (config/http_server.py), byte by byte: header limits answer 414/431,
slow heads and stalled bodies time out, the client address comes from trusted proxies
only. Twisted's in-memory transport and clock stand in for the network and time; the
same behaviour over a real socket is in tests/live/test_http_edge.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from config.forwarded import parse_networks
from config.http_server import EdgeSettings, TrellisHTTPFactory, TrellisServer

EDGE = EdgeSettings(max_header_bytes=16 * 1024, header_timeout_s=30, idle_timeout_s=60)
REQUEST = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: hs\r\n"


class RecordingServer(TrellisServer):
    """Daphne's server up to the application: it keeps the scopes it would run it with
    (and answers nothing, like an application still working on the request)."""

    def __init__(self, edge: EdgeSettings) -> None:
        super().__init__(application=None, endpoints=["tcp:0"], edge=edge)
        self.connections: dict[Any, Any] = {}
        self.scopes: list[dict[str, Any]] = []

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> None:
        self.scopes.append(scope)


class Connection:
    def __init__(self, edge: EdgeSettings = EDGE, peer: str = "127.0.0.1") -> None:
        self.server = RecordingServer(edge)
        self.clock = Clock()
        factory = TrellisHTTPFactory(self.server)
        factory.reactor = self.clock
        factory.doStart()
        self.factory = factory
        self.channel = factory.buildProtocol(None)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The status and Matrix error the server wrote."""
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        status_line, *headers = head.split(b"\r\n")
        assert b"Connection: close" in headers
        assert f"Content-Length: {len(body)}".encode() in headers
        return int(status_line.split()[1]), json.loads(body)


def test_a_request_within_the_limits_reaches_the_application() -> None:
    connection = Connection()
    connection.send(REQUEST + b"X-Fill: " + b"a" * 15_000 + b"\r\n\r\n")

    assert [scope["path"] for scope in connection.server.scopes] == ["/_matrix/client/versions"]
    assert not connection.closed
    assert connection.factory.reading_heads == set()


def test_a_client_gone_in_the_middle_of_a_head_is_forgotten() -> None:
    connection = Connection()
    connection.send(b"GET /_matrix/client/versions HTTP/1.1\r\n")
    assert connection.factory.reading_heads == {connection.channel}

    connection.channel.connectionLost(ConnectionDone())

    assert connection.factory.reading_heads == set()


@pytest.mark.parametrize("chunk", [None, 1000], ids=["at-once", "in-chunks"])
def test_a_header_over_the_limit_gets_431(chunk: int | None) -> None:
    connection = Connection()
    data = REQUEST + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    for start in range(0, len(data), chunk or len(data)):
        connection.send(data[start : start + (chunk or len(data))])

    assert connection.answer() == (
        431,
        {"errcode": "M_TOO_LARGE", "error": "The request's headers are too large"},
    )
    assert connection.closed
    assert connection.server.scopes == []


def test_many_headers_over_the_limit_together_get_431() -> None:
    connection = Connection()
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
    connection.send(REQUEST + headers + b"\r\n")

    assert connection.answer()[0] == 431
    assert connection.closed


def test_a_request_line_over_the_limit_gets_414() -> None:
    connection = Connection()
    connection.send(b"GET /_matrix/client/v3/sync?filter=" + b"a" * 20_000 + b" HTTP/1.1\r\n")

    assert connection.answer() == (
        414,
        {"errcode": "M_TOO_LARGE", "error": "The request URI is too long"},
    )
    assert connection.closed


def test_the_limit_is_configurable() -> None:
    connection = Connection(EdgeSettings(max_header_bytes=1024))
    connection.send(REQUEST + b"X-Big: " + b"a" * 2000 + b"\r\n\r\n")

    assert connection.answer()[0] == 431


def test_a_malformed_request_gets_a_matrix_400() -> None:
    connection = Connection()
    connection.send(REQUEST + b"no colon here\r\n\r\n")

    assert connection.answer() == (
        400,
        {"errcode": "M_UNKNOWN", "error": "Malformed HTTP request"},
    )
    assert connection.closed


def test_a_head_trickled_in_byte_by_byte_times_out() -> None:
    # A "slowloris" keeps resetting an idle timer; the head's own deadline still holds.
    connection = Connection()
    connection.send(REQUEST)
    for _ in range(29):
        connection.clock.advance(1)
        connection.send(b"X")
    assert not connection.closed

    connection.clock.advance(1)

    assert connection.answer() == (
        408,
        {"errcode": "M_UNKNOWN", "error": "The request took too long to arrive"},
    )
    assert connection.closed
    assert connection.server.scopes == []


def test_a_silent_partial_head_times_out_at_the_header_deadline() -> None:
    # Heads are checked every second: the deadline holds to within that.
    connection = Connection()
    connection.clock.advance(0.5)
    connection.send(b"GET /_matrix/client/ver")
    connection.clock.advance(29.9)
    assert not connection.closed

    connection.clock.advance(1)

    assert connection.answer()[0] == 408
    assert connection.closed


def test_a_stalled_body_times_out_after_the_idle_timeout() -> None:
    connection = Connection()
    connection.send(b"POST /_matrix/client/v3/login HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    for _ in range(5):
        # A body that keeps coming may take longer than the head's deadline.
        connection.clock.advance(20)
        connection.send(b" ")
    connection.clock.advance(59)
    assert not connection.closed

    connection.clock.advance(2)

    assert connection.answer()[0] == 408
    assert connection.closed


def test_an_idle_kept_alive_connection_is_closed_without_an_answer() -> None:
    connection = Connection()
    connection.clock.advance(59)
    assert not connection.closed

    connection.clock.advance(2)

    assert connection.closed
    assert connection.transport.value() == b""


def test_a_complete_request_being_answered_is_not_timed_out() -> None:
    # A /sync long-poll: the request is in, the application takes its time.
    connection = Connection()
    connection.send(b"GET /_matrix/client/v3/sync?timeout=3600000 HTTP/1.1\r\n\r\n")
    connection.clock.advance(3600)

    assert len(connection.server.scopes) == 1
    assert not connection.closed


def _forwarded_scope(peer: str, proxies: list[str], *headers: bytes) -> dict[str, Any]:
    connection = Connection(EdgeSettings(trusted_proxies=parse_networks(proxies)), peer=peer)
    connection.send(REQUEST + b"".join(h + b"\r\n" for h in headers) + b"\r\n")
    [scope] = connection.server.scopes
    return scope


def test_forwarded_headers_are_ignored_without_trusted_proxies() -> None:
    scope = _forwarded_scope(
        "127.0.0.1", [], b"X-Forwarded-For: 203.0.113.7, 127.0.0.1", b"X-Forwarded-Proto: https"
    )

    assert scope["client"] == ["127.0.0.1", 40000]
    assert scope["scheme"] == "http"


def test_forwarded_headers_are_ignored_from_a_peer_that_is_not_a_trusted_proxy() -> None:
    scope = _forwarded_scope(
        "198.51.100.4", ["127.0.0.1"], b"X-Forwarded-For: 203.0.113.7", b"X-Forwarded-Proto: https"
    )

    assert scope["client"] == ["198.51.100.4", 40000]
    assert scope["scheme"] == "http"


def test_a_trusted_proxy_names_the_client_and_scheme() -> None:
    scope = _forwarded_scope(
        "127.0.0.1",
        ["127.0.0.1"],
        b"X-Forwarded-For: 1.1.1.1, 203.0.113.7, 127.0.0.1",
        b"X-Forwarded-Proto: https",
    )

    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"


def test_a_trusted_proxy_without_forwarded_headers_is_the_client() -> None:
    scope = _forwarded_scope("127.0.0.1", ["127.0.0.1"])

    assert scope["client"] == ["127.0.0.1", 40000]
    assert scope["scheme"] == "http"
