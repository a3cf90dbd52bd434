"""Real receivers for what the server sends out: an SMTP server (aiosmtpd) and an SMS
webhook (http.server), both on loopback in a thread of the test process.

The tests read what arrived as a person's mail client or a gateway would, and follow
the link in it.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPSink:
    """An SMTP server on 127.0.0.1 keeping every mail it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._lock = threading.Lock()
        self._running = False

    async def handle_DATA(  # noqa: N802 (the name aiosmtpd calls)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def start(self) -> SMTPSink:
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop answering (a test may stop it early, to see a server that is down)."""
        if self._running:
            self._controller.stop()
            self._running = False

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    def wait_for(self, address: str, count: int = 1, timeout: float = 20.0) -> EmailMessage:
        """The ``count``-th mail to ``address``, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.to(address)
            if len(received) >= count:
                return received[count - 1]
            time.sleep(0.05)
        raise AssertionError(f"no mail #{count} to {address} within {timeout}s")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage) -> str:
    """The one validation link of a mail (its plain text part)."""
    links = set(re.findall(r"https?://\S+", text_of(message)))
    assert len(links) == 1, links
    return links.pop()


class SMSWebhook:
    """The operator's SMS webhook: keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sink.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/sms"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> SMSWebhook:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (a test may stop it early, to see a webhook that is down)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
