"""The HTTP edge: Daphne, with the limits and the client address an internet-facing
server needs.

Daphne (Twisted's ``twisted.web.http`` underneath) parses requests; this module changes
four things about how it does so:

- **Header limits answer.** The request line and headers together may be
  ``max_header_bytes`` (TRELLIS_MAX_HEADER_BYTES, 16 KiB). Beyond that Twisted just
  closed the connection; here a too-long request line gets ``414 URI Too Long`` and too
  many header bytes ``431 Request Header Fields Too Large`` (RFC 9110 15.5.15,
  RFC 6585 5), each with a Matrix error body, and the connection is closed.
- **Slow requests time out.** A request's line and headers must all arrive within
  ``header_timeout_s`` of its first byte (checked every second), however slowly they
  trickle in (a "slowloris" resets an idle timer forever); a body, or a kept-alive
  connection between requests, may be silent for at most ``idle_timeout_s``. A request
  cut short gets ``408 Request Timeout``; an idle connection is just closed. Once a
  request is complete nothing times it out here: a /sync long-poll waits as long as it
  asks to.
- **The client address is the peer's**, unless the peer is a trusted proxy
  (TRELLIS_TRUSTED_PROXIES), see config/forwarded.py. Daphne's ``--proxy-headers``
  believed ``X-Forwarded-For`` from anyone.
- **The access log redacts secrets** in query strings (config/redact.py).

Besides the plain listener (TRELLIS_BIND, behind the operator's proxy), ``serve`` can
listen over TLS for other servers (TRELLIS_FEDERATION_BIND, config/tls.py): the same
channel, limits and application, HTTP/1.1 only, as Synapse's default federation listener.

The per-request cost is a clock read and adding to and removing from a set.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daphne.server
from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import LoopingCall
from twisted.web import http

from config.forwarded import IPNetwork, client_address, forwarded_https, is_trusted_peer
from config.redact import redact_uri

logger = logging.getLogger(__name__)

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_HEADER_TIMEOUT_S = 30.0
DEFAULT_IDLE_TIMEOUT_S = 60.0
# How often heads are checked against their deadline: a slow head is answered 408 within
# this much after it.
HEAD_CHECK_INTERVAL_S = 1.0

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


@dataclass(frozen=True)
class EdgeSettings:
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    trusted_proxies: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class TlsListener:
    """An address to listen on over TLS, with the certificate (PEM, the server's first,
    then any intermediates) and private key (PEM) to present."""

    host: str
    port: int
    cert: Path
    key: Path


def certificate_options(cert: Path, key: Path) -> CertificateOptions:
    """Twisted's TLS server settings for a PEM certificate chain and key.

    Twisted's own ``ssl:`` endpoint string would serve the first certificate of a file
    only; a certificate from a public authority usually comes with intermediates
    (Let's Encrypt's fullchain.pem) that other servers need to verify it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain = x509.load_pem_x509_certificates(cert.read_bytes())
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    # pyOpenSSL takes cryptography's objects (its own X509 and PKey are deprecated);
    # Twisted passes them on untouched, whatever its annotations say.
    options = CertificateOptions(
        privateKey=private_key,  # type: ignore[arg-type]
        certificate=chain[0],  # type: ignore[arg-type]
        extraCertChain=chain[1:],  # type: ignore[arg-type]
    )
    # Builds the OpenSSL context now, so a key that does not match fails at start.
    options.getContext()
    return options


def error_response(status: int, errcode: str, error: str) -> bytes:
    """A complete HTTP/1.1 response carrying a Matrix error, after which the server
    closes the connection."""
    body = json.dumps({"errcode": errcode, "error": error}).encode()
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status, _REASONS[status], len(body))
    )
    return head + body


class TrellisHTTPChannel(http.HTTPChannel):
    """One HTTP/1.1 connection, with the header limits and timeouts above.

    Twisted's channel has one idle timer (``TimeoutMixin``), pushed back by every read
    and switched off while a complete request is being answered: that is the idle
    timeout. A head's deadline is not a timer of its own: the channel joins its
    factory's ``reading_heads`` at the head's first byte and leaves when the head is
    complete, and the factory checks that set's deadlines every second. (Bringing the
    idle timer forward instead would cost a linear search of all the reactor's timers on
    every request.)
    """

    _head_deadline: float | None = None

    def __init__(self, settings: EdgeSettings, factory: TrellisHTTPFactory) -> None:
        super().__init__()
        # LineReceiver's limit on one line and Twisted's on the whole head: the same.
        self.MAX_LENGTH = settings.max_header_bytes
        self.totalHeadersSize = settings.max_header_bytes
        self.header_timeout_s = settings.header_timeout_s
        self._reading_heads = factory.reading_heads
        self._seconds = factory.reactor.seconds

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        if self._head_deadline is None and self.line_mode and not self._handlingRequest:
            # The first bytes of a request: its line and headers are on their way.
            self._head_deadline = self._seconds() + self.header_timeout_s
            self._reading_heads.add(self)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:  # noqa: N802 (Twisted's name)
        self._head_done()
        super().allHeadersReceived()

    def _head_done(self) -> None:
        self._head_deadline = None
        self._reading_heads.discard(self)

    def head_overdue(self, now: float) -> bool:
        return self._head_deadline is not None and self._head_deadline <= now

    def time_out_head(self) -> None:
        self._refuse(408, "M_UNKNOWN", "The request took too long to arrive")

    def lineLengthExceeded(self, line: bytes) -> None:  # noqa: N802 (Twisted's name)
        # One line is longer than the whole head may be. The request line is the head's
        # first: nothing was counted before it.
        if self._receivedHeaderSize == 0:
            self._refuse(414, "M_TOO_LARGE", "The request URI is too long")
        else:
            self._refuse(431, "M_TOO_LARGE", "The request's headers are too large")

    def _respondToBadRequestAndDisconnect(self) -> None:  # noqa: N802 (Twisted's name)
        # Twisted's answer to anything wrong with a head: an empty 400. Say what is wrong.
        # Its lines are each within the limit (see lineLengthExceeded), so a head too
        # large in all is too many header bytes.
        if self._receivedHeaderSize > self.totalHeadersSize:
            self._refuse(431, "M_TOO_LARGE", "The request's headers are too large")
        else:
            self._refuse(400, "M_UNKNOWN", "Malformed HTTP request")

    def timeoutConnection(self) -> None:  # noqa: N802 (Twisted's name)
        # Silent for the idle timeout: in the middle of a request (its head or body) the
        # client is told why; between requests the connection is just closed.
        reading_body = not self.line_mode and not self._handlingRequest
        if self._head_deadline is not None or reading_body:
            self._head_done()
            assert self.transport is not None
            self.transport.write(
                error_response(408, "M_UNKNOWN", "The request took too long to arrive")
            )
        super().timeoutConnection()

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 (Twisted's name)
        self._head_done()
        super().connectionLost(reason)

    def _refuse(self, status: int, errcode: str, error: str) -> None:
        """Answer ``status`` and close the connection; read nothing more from it."""
        self.dataReceived = _ignore  # type: ignore[method-assign]
        self._head_done()
        assert self.transport is not None
        self.transport.write(error_response(status, errcode, error))
        self.loseConnection()


def _ignore(data: bytes) -> None:
    return None


class TrellisRequest(WebRequest):  # type: ignore[misc]
    """Daphne's request, with the client address and scheme a trusted proxy forwards."""

    _forwarded_https: bool | None = None

    def process(self) -> Any:
        proxies: tuple[IPNetwork, ...] = self.channel.factory.edge.trusted_proxies
        if proxies and isinstance(self.client, IPv4Address | IPv6Address):
            self._believe_trusted_proxy(proxies)
        return super().process()

    def _believe_trusted_proxy(self, proxies: tuple[IPNetwork, ...]) -> None:
        peer = self.client.host
        if not is_trusted_peer(peer, proxies):
            return
        headers = self.requestHeaders
        client = client_address(peer, headers.getRawHeaders(b"x-forwarded-for", []), proxies)
        if client != peer:
            # Daphne reads the scope's client (and so REMOTE_ADDR) from here.
            address_type = IPv6Address if ":" in client else IPv4Address
            self.client = address_type("TCP", client, 0)
        self._forwarded_https = forwarded_https(headers.getRawHeaders(b"x-forwarded-proto", []))

    def isSecure(self) -> bool:  # noqa: N802 (Twisted's name)
        if self._forwarded_https is not None:
            return self._forwarded_https
        return bool(super().isSecure())


class TrellisHTTPFactory(HTTPFactory):  # type: ignore[misc]
    """Daphne's factory, building the channel and request above, and timing out heads
    that take too long."""

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.edge: EdgeSettings = server.edge
        self.timeOut = self.edge.idle_timeout_s
        # The connections in the middle of a request's head: a handful at any moment.
        self.reading_heads: set[TrellisHTTPChannel] = set()
        self._head_checker: LoopingCall | None = None

    def startFactory(self) -> None:  # noqa: N802 (Twisted's name)
        super().startFactory()
        self._head_checker = LoopingCall(self.time_out_slow_heads)
        self._head_checker.clock = self.reactor
        self._head_checker.start(HEAD_CHECK_INTERVAL_S, now=False)

    def stopFactory(self) -> None:  # noqa: N802 (Twisted's name)
        if self._head_checker is not None and self._head_checker.running:
            self._head_checker.stop()
        super().stopFactory()

    def time_out_slow_heads(self) -> None:
        now = self.reactor.seconds()
        for channel in [c for c in self.reading_heads if c.head_overdue(now)]:
            channel.time_out_head()

    def protocol(self) -> TrellisHTTPChannel:  # type: ignore[override]
        # Twisted's wrapper around the channel exists to switch to HTTP/2 after TLS
        # negotiation (ALPN); Trellis speaks HTTP/1.1 only, on its plain listener and on
        # the federation one (which offers no ALPN protocols).
        return TrellisHTTPChannel(self.edge, self)

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802 (Twisted's name)
        channel = super().buildProtocol(addr)
        channel.requestFactory = TrellisRequest
        return channel


class RedactingAccessLog(AccessLogGenerator):  # type: ignore[misc]
    """Daphne's access log (NCSA-like lines), with query-string secrets redacted."""

    def write_entry(self, host: Any, date: Any, request: str, *args: Any, **kwargs: Any) -> None:
        super().write_entry(host, date, redact_uri(request), *args, **kwargs)


class TrellisServer(daphne.server.Server):  # type: ignore[misc]
    def __init__(
        self,
        *args: Any,
        edge: EdgeSettings,
        tls_listeners: Sequence[tuple[TlsListener, CertificateOptions]] = (),
        **kwargs: Any,
    ) -> None:
        # Daphne calls ready_callable once its factory exists and its own endpoints
        # listen, just before the reactor runs: the TLS listeners start there too.
        super().__init__(*args, ready_callable=self._listen_tls, **kwargs)
        self.edge = edge
        self.tls_listeners = tuple(tls_listeners)

    def run(self) -> None:
        # Daphne's run() builds its HTTP factory by this module-level name.
        daphne.server.HTTPFactory = TrellisHTTPFactory
        super().run()

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        address = port.getHost() if hasattr(port, "getHost") else None
        if address is not None and hasattr(address, "port"):
            tls_ports = {listener.port for listener, _ in self.tls_listeners}
            scheme = "https" if address.port in tls_ports else "http"
            print(f"Listening on {scheme}://{address.host}:{address.port}", flush=True)

    def _listen_tls(self) -> None:
        # The reactor daphne.server installed (asyncio's); imported here, after it did.
        from twisted.internet import reactor

        for listener, options in self.tls_listeners:
            endpoint = SSL4ServerEndpoint(reactor, listener.port, options, interface=listener.host)
            listening = endpoint.listen(self.http_factory)
            listening.addCallback(self.listen_success)
            listening.addErrback(self._tls_listen_error, listener)

    def _tls_listen_error(self, failure: Any, listener: TlsListener) -> None:
        logger.critical(
            "Cannot listen over TLS on %s:%s: %s",
            listener.host,
            listener.port,
            failure.getErrorMessage(),
        )
        from twisted.internet import reactor

        # Daphne runs the reactor right after ready_callable whatever happens in it: stop
        # it as soon as it does, and exit with a failure.
        self.abort_start = True
        reactor.callWhenRunning(reactor.stop)  # type: ignore[attr-defined]


def serve(
    application: Any,
    host: str,
    port: int,
    edge: EdgeSettings,
    tls_listeners: Sequence[TlsListener] = (),
) -> int:
    """Run Daphne on host:port, and over TLS on each of ``tls_listeners``, until the
    reactor stops; the exit status.

    What ``daphne`` on the command line does, with the defaults Trellis ran with before,
    minus ``--proxy-headers``: logging is Django's (LOGGING), the access log goes to
    stdout.
    """
    server = TrellisServer(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        action_logger=RedactingAccessLog(sys.stdout),
        websocket_connect_timeout=5,
        websocket_handshake_timeout=5,
        edge=edge,
        # Certificates are read before anything listens: a bad file stops the start.
        tls_listeners=[(tls, certificate_options(tls.cert, tls.key)) for tls in tls_listeners],
    )
    server.run()
    return 1 if server.abort_start else 0
