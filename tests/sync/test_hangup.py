"""A long-polling /sync stops waiting when its client hangs up (config/hangup.py).

Driven through the ASGI application itself, as Daphne drives it: the test client does
not go through config/asgi.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from config.asgi import matrix_asgi_app
from sync import hub
from tests.conftest import MatrixTestClient, Persona


def _scope(token: str, query: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/_matrix/client/v3/sync",
        "raw_path": b"/_matrix/client/v3/sync",
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8008),
    }


def _waiting(user_id: str) -> bool:
    return any(waiter.user_id == user_id for waiter in hub.hub.waiters)


async def _long_poll(
    token: str, since: str, user_id: str, *, hang_up: bool
) -> tuple[list[dict[str, Any]], bool]:
    """Start a long-poll, wait until it waits, then hang up (or not); what was sent, and
    whether the request was still waiting just before."""
    gone = asyncio.Event()
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    timeout_ms = 30_000 if hang_up else 300
    app = asyncio.ensure_future(
        matrix_asgi_app(_scope(token, f"since={since}&timeout={timeout_ms}"), receive, send)
    )
    for _ in range(500):
        if _waiting(user_id):
            break
        await asyncio.sleep(0.01)
    was_waiting = _waiting(user_id)
    if hang_up:
        gone.set()
    # Well before the 30 s long-poll would have ended; returns normally, not cancelled.
    await asyncio.wait_for(app, 10)
    return sent, was_waiting


def _poll(api: MatrixTestClient, who: Persona, *, hang_up: bool) -> list[dict[str, Any]]:
    """What a long-poll of ``who`` sent; it was waiting before the end, and is no more."""
    since = api.get("sync?timeout=0", token=who.access_token).body["next_batch"]
    sent, was_waiting = asyncio.run(
        _long_poll(who.access_token, since, who.user_id, hang_up=hang_up)
    )
    assert was_waiting
    assert not _waiting(who.user_id)
    return sent


@pytest.mark.django_db(transaction=True)
def test_a_client_that_hangs_up_ends_its_long_poll(api: MatrixTestClient, alice: Persona) -> None:
    assert _poll(api, alice, hang_up=True) == []  # nobody to answer


@pytest.mark.django_db(transaction=True)
def test_a_client_that_stays_gets_its_answer(api: MatrixTestClient, alice: Persona) -> None:
    sent = _poll(api, alice, hang_up=False)

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    assert b'"next_batch"' in b"".join(m.get("body", b"") for m in sent[1:])
