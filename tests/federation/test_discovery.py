"""Server discovery (server-server-api.md#resolving-server-names), DNS faked."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from federation import discovery, srv
from federation.transport import HttpResponse, Target, TransportError
from tests.federation.helpers import json_response


class FakeWeb:
    """Answers https://<host>/.well-known/matrix/server from a dict; counts requests."""

    def __init__(self) -> None:
        self.answers: dict[str, HttpResponse] = {}
        self.asked: list[str] = []

    def send(self, target: Target, method: str, path: str, **kwargs: Any) -> HttpResponse:
        url = f"{target.scheme}://{target.host_header}{path}"
        self.asked.append(url)
        assert target.tls_hostname == target.connect_host  # certificates for the host asked
        if url not in self.answers:
            raise TransportError("connection refused")
        return self.answers[url]


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> FakeWeb:
    fake = FakeWeb()
    monkeypatch.setattr(discovery, "send", fake.send)
    return fake


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[srv.SrvRecord]]:
    records: dict[str, list[srv.SrvRecord]] = {}

    def lookup(name: str, timeout_s: float = 3.0) -> list[srv.SrvRecord]:
        return records.get(name, [])

    monkeypatch.setattr(srv, "lookup_srv", lookup)
    return records


def _t(host: str, port: int, tls: str, header: str) -> Target:
    return Target("https", host, port, tls, header)


def test_an_override_wins(settings: Any, web: FakeWeb) -> None:
    settings.FEDERATION_URL_OVERRIDES = {"peer.example": "http://127.0.0.1:18228"}
    assert discovery.resolve("peer.example") == [
        Target("http", "127.0.0.1", 18228, "127.0.0.1", "127.0.0.1:18228", trusted=True)
    ]
    assert web.asked == []


@pytest.mark.parametrize(
    ("server_name", "target"),
    [
        ("1.2.3.4", _t("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
        ("1.2.3.4:1234", _t("1.2.3.4", 1234, "1.2.3.4", "1.2.3.4:1234")),
        ("[::1]", _t("::1", 8448, "::1", "[::1]")),
        ("[2001:db8::1]:443", _t("2001:db8::1", 443, "2001:db8::1", "[2001:db8::1]:443")),
        (
            "matrix.example:8448",
            _t("matrix.example", 8448, "matrix.example", "matrix.example:8448"),
        ),
    ],
)
def test_ip_literals_and_explicit_ports_need_no_lookup(
    web: FakeWeb, dns: dict[str, Any], server_name: str, target: Target
) -> None:
    assert discovery.resolve(server_name) == [target]
    assert web.asked == []


def test_well_known_delegation_with_a_port(web: FakeWeb, dns: dict[str, Any]) -> None:
    web.answers["https://example.org/.well-known/matrix/server"] = json_response(
        {"m.server": "matrix.example.org:443"}
    )
    assert discovery.resolve("example.org") == [
        _t("matrix.example.org", 443, "matrix.example.org", "matrix.example.org:443")
    ]


def test_well_known_delegation_to_an_ip_literal(web: FakeWeb, dns: dict[str, Any]) -> None:
    web.answers["https://example.org/.well-known/matrix/server"] = json_response(
        {"m.server": "10.0.0.1"}
    )
    assert discovery.resolve("example.org") == [_t("10.0.0.1", 8448, "10.0.0.1", "10.0.0.1")]


def test_well_known_delegation_then_srv_of_the_delegated_name(
    web: FakeWeb, dns: dict[str, Any]
) -> None:
    web.answers["https://example.org/.well-known/matrix/server"] = json_response(
        {"m.server": "matrix.example.org"}
    )
    dns["_matrix-fed._tcp.matrix.example.org"] = [
        srv.SrvRecord(10, 0, 8443, "b.example.org"),
        srv.SrvRecord(5, 0, 8448, "a.example.org"),
    ]
    # Certificates and Host for the delegated name, connections to the SRV targets.
    assert discovery.resolve("example.org") == [
        _t("b.example.org", 8443, "matrix.example.org", "matrix.example.org"),
        _t("a.example.org", 8448, "matrix.example.org", "matrix.example.org"),
    ]


def test_well_known_delegation_without_srv_uses_8448(web: FakeWeb, dns: dict[str, Any]) -> None:
    web.answers["https://example.org/.well-known/matrix/server"] = json_response(
        {"m.server": "matrix.example.org"}
    )
    assert discovery.resolve("example.org") == [
        _t("matrix.example.org", 8448, "matrix.example.org", "matrix.example.org")
    ]


def test_without_well_known_srv_then_the_deprecated_srv(web: FakeWeb, dns: dict[str, Any]) -> None:
    dns["_matrix._tcp.old.example"] = [srv.SrvRecord(0, 0, 8000, "host.old.example")]
    assert discovery.resolve("old.example") == [
        _t("host.old.example", 8000, "old.example", "old.example")
    ]
    dns["_matrix-fed._tcp.new.example"] = [srv.SrvRecord(0, 0, 9000, "host.new.example")]
    dns["_matrix._tcp.new.example"] = [srv.SrvRecord(0, 0, 8000, "wrong.new.example")]
    assert discovery.resolve("new.example") == [
        _t("host.new.example", 9000, "new.example", "new.example")
    ]


@pytest.mark.parametrize(
    "answer",
    [
        json_response({"m.server": "x"}, status=404),
        json_response({"m.server": 1}),
        json_response({"m.server": "bad name!"}),
        json_response(["m.server"]),
        HttpResponse(200, {}, b"<html>"),
    ],
)
def test_an_invalid_well_known_falls_through_to_port_8448(
    web: FakeWeb, dns: dict[str, Any], answer: HttpResponse
) -> None:
    web.answers["https://example.org/.well-known/matrix/server"] = answer
    assert discovery.resolve("example.org") == [
        _t("example.org", 8448, "example.org", "example.org")
    ]


def test_well_known_answers_and_errors_are_cached(web: FakeWeb, dns: dict[str, Any]) -> None:
    web.answers["https://example.org/.well-known/matrix/server"] = json_response(
        {"m.server": "m.example.org:443"}
    )
    discovery.resolve("example.org")
    discovery.resolve("example.org")
    discovery.resolve("down.example")
    discovery.resolve("down.example")
    assert web.asked == [
        "https://example.org/.well-known/matrix/server",
        "https://down.example/.well-known/matrix/server",
    ]


def test_well_known_redirects_are_followed_but_not_in_circles(
    web: FakeWeb, dns: dict[str, Any]
) -> None:
    a = "https://a.example/.well-known/matrix/server"
    b = "https://b.example/.well-known/matrix/server"
    web.answers[a] = HttpResponse(301, {"location": b}, b"")
    web.answers[b] = HttpResponse(302, {"location": a}, b"")
    assert discovery.resolve("a.example") == [_t("a.example", 8448, "a.example", "a.example")]
    assert web.asked == [a, b]

    web.answers["https://c.example/.well-known/matrix/server"] = HttpResponse(
        307, {"location": "/elsewhere"}, b""
    )
    web.answers["https://c.example/elsewhere"] = json_response({"m.server": "d.example:1"})
    assert discovery.resolve("c.example") == [_t("d.example", 1, "d.example", "d.example:1")]


def test_invalid_server_names_do_not_resolve(web: FakeWeb) -> None:
    with pytest.raises(discovery.DiscoveryError):
        discovery.resolve("bad name")


class TestSrvMessages:
    def _answer(self, query: bytes, records: list[tuple[int, int, int, str]]) -> bytes:
        query_id = struct.unpack("!H", query[:2])[0]
        question = query[12:]
        header = struct.pack("!HHHHHH", query_id, 0x8180, 1, len(records), 0, 0)
        answers = b""
        for priority, weight, port, target in records:
            name = b"".join(bytes([len(p)]) + p.encode() for p in target.split(".")) + b"\0"
            rdata = struct.pack("!HHH", priority, weight, port) + name
            # The owner name is a pointer to the question (offset 12).
            answers += b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 300, len(rdata)) + rdata
        return header + question + answers

    def test_records_are_parsed_and_ordered(self) -> None:
        query = srv.build_query("_matrix-fed._tcp.example.org", 1234)
        answer = self._answer(
            query, [(10, 5, 8448, "b.example.org"), (1, 0, 443, "a.example.org")]
        )
        assert srv.parse_response(answer, 1234) == [
            srv.SrvRecord(1, 0, 443, "a.example.org"),
            srv.SrvRecord(10, 5, 8448, "b.example.org"),
        ]

    def test_a_dot_target_means_no_service(self) -> None:
        query = srv.build_query("_matrix-fed._tcp.example.org", 7)
        answer = self._answer(query, [(0, 0, 0, "")])
        assert srv.parse_response(answer, 7) == []

    def test_nxdomain_is_no_records(self) -> None:
        query = srv.build_query("_matrix-fed._tcp.example.org", 7)
        nx = struct.pack("!HHHHHH", 7, 0x8183, 1, 0, 0, 0) + query[12:]
        assert srv.parse_response(nx, 7) == []

    @pytest.mark.parametrize(
        "message",
        [
            b"",
            struct.pack("!HHHHHH", 8, 0x8180, 0, 0, 0, 0),  # wrong ID
            struct.pack("!HHHHHH", 7, 0x8182, 0, 0, 0, 0),  # SERVFAIL
            struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c",  # pointer loop
            struct.pack("!HHHHHH", 7, 0x8180, 0, 1, 0, 0) + b"\x00\x00",  # truncated record
        ],
    )
    def test_broken_answers_are_errors(self, message: bytes) -> None:
        with pytest.raises(srv.DnsError):
            srv.parse_response(message, 7)
