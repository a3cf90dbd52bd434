"""Shared test helpers: a Matrix client over Django's test client, and named personas.

``api`` is a :class:`MatrixTestClient`; ``alice`` and ``bob`` are registered users
(:class:`Persona`) with a logged-in device each. Tests talk HTTP only, as a client
would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.test.client import ClientHandler

from config.asgi import MatrixResolution
from config.process_caches import reset_process_caches
from tests import graph_check

CLIENT_V3 = "/_matrix/client/v3"


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


@dataclass
class Persona:
    localpart: str
    password: str
    user_id: str
    access_token: str
    device_id: str


class _MatrixClientHandler(MatrixResolution, ClientHandler):
    """Django's test handler, resolving URLs as the server does (config/asgi.py): on
    the raw path, which the request carries as ``RAW_URI``, where it has a ``%2F``."""


class MatrixTestClient:
    def __init__(self) -> None:
        self.client = Client(raise_request_exception=False)
        self.client.handler = _MatrixClientHandler(enforce_csrf_checks=False)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> Response:
        if not path.startswith("/"):
            path = f"{CLIENT_V3}/{path}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data: Any = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = self.client.generic(
            method,
            path,
            data=data,
            content_type=content_type,
            headers=headers,
            # What a WSGI server passes on beside the decoded PATH_INFO (config/paths.py).
            RAW_URI=path,
        )
        content = response.content
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content
        return Response(response.status_code, parsed, dict(response.headers))

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", path, body if body is not None else {}, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("PUT", path, body if body is not None else {}, **kwargs)

    def delete(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return self.request("DELETE", path, body, **kwargs)

    def register(self, localpart: str, password: str = "correct horse", **extra: Any) -> Persona:
        """Register through UIA with m.login.dummy, as a client would."""
        body = {"username": localpart, "password": password, **extra}
        first = self.post("register", body)
        assert first.status == 401, first.body
        done = self.post(
            "register",
            {**body, "auth": {"type": "m.login.dummy", "session": first.body["session"]}},
        )
        assert done.status == 200, done.body
        return Persona(
            localpart,
            password,
            done.body["user_id"],
            done.body.get("access_token", ""),
            done.body.get("device_id", ""),
        )

    def register_guest(self, **body: Any) -> Persona:
        """POST /register?kind=guest (the server must allow guest access)."""
        response = self.post("register?kind=guest", body)
        assert response.status == 200, response.body
        guest_id = response.body["user_id"]
        return Persona(
            guest_id[1 : guest_id.index(":")],
            "",
            guest_id,
            response.body["access_token"],
            response.body["device_id"],
        )

    def login(self, localpart: str, password: str, **extra: Any) -> Response:
        return self.post(
            "login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
                **extra,
            },
        )


def second_device(api: MatrixTestClient, who: Persona) -> Persona:
    """``who`` logged in again: the same user on a new device."""
    response = api.login(who.localpart, who.password)
    assert response.status == 200, response.body
    return Persona(
        who.localpart,
        who.password,
        who.user_id,
        response.body["access_token"],
        response.body["device_id"],
    )


def user_id(localpart: str) -> str:
    return f"@{localpart}:{settings.SERVER_NAME}"


def forget_process_caches() -> None:
    """Empty the caches that outlive a database transaction: every test (and every
    hypothesis example that rolls its own changes back) starts from none."""
    # Rate-limit buckets and nonces live in the cache.
    cache.clear()
    # So do the process's caches of database facts (stream positions, events, filters,
    # sessions, ...): each test rolls its database back, and positions and IDs are
    # handed out again.
    reset_process_caches()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    forget_process_caches()


@pytest.fixture(autouse=True)
def _room_graphs_sound(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every room a test leaves behind passes the graph check (tests/graph_check.py)."""
    yield from graph_check.guard(request)


@pytest.fixture
def api(db: None) -> MatrixTestClient:
    return MatrixTestClient()


@pytest.fixture
def alice(api: MatrixTestClient) -> Persona:
    return api.register("alice")


@pytest.fixture
def bob(api: MatrixTestClient) -> Persona:
    return api.register("bob")


@pytest.fixture(autouse=True)
def _ratelimit_off(settings: Any) -> None:
    # Tests register many users from one address; tests/accounts/test_ratelimit.py turns
    # rate limiting back on where it is the subject.
    settings.RATELIMIT_ENABLED = False
