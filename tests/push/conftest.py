"""Fixtures for the push tests: carol, next to alice and bob; a push gateway on 127.0.0.1,
and the allow list that lets pushers reach it over plain HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from push import delivery
from tests.conftest import MatrixTestClient, Persona

NOTIFY_PATH = "/_matrix/push/v1/notify"


class Gateway:
    """A push gateway that records what it receives and answers as told.

    ``status`` is the HTTP status to answer with, ``rejected`` the pushkeys to report as
    rejected; ``stop()`` closes the port, so connections are refused.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.rejected: list[str] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                answer = json.dumps({"rejected": gateway.rejected}).encode()
                if gateway.status == 200:
                    gateway.received.append({"path": self.path, **body})
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{NOTIFY_PATH}"

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return [request["notification"] for request in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")


@pytest.fixture(autouse=True)
def _push_state(settings: Any) -> Iterator[None]:
    settings.PUSH_IP_ALLOWLIST = ["127.0.0.1/32"]
    delivery.forget_index()
    yield
    delivery.forget_index()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    yield running
    running.stop()


def http_pusher(url: str, **overrides: Any) -> dict[str, Any]:
    """A POST /pushers/set body for an http pusher at ``url``."""
    return {
        "kind": "http",
        "app_id": "org.example.app.android",
        "pushkey": "pushkey-1",
        "app_display_name": "Example",
        "device_display_name": "Alice's phone",
        "lang": "en",
        "data": {"url": url},
        **overrides,
    }


def set_pusher(api: MatrixTestClient, who: Persona, body: dict[str, Any]) -> None:
    response = api.post("pushers/set", body, token=who.access_token)
    assert response.status == 200, response.body
    assert response.body == {}


def pushers(api: MatrixTestClient, who: Persona) -> list[dict[str, Any]]:
    response = api.get("pushers", token=who.access_token)
    assert response.status == 200, response.body
    return list(response.body["pushers"])
