"""Trellis's /_synapse/admin API next to Synapse's: the same requests to both, and the
answers' shapes compared.

``admin_pair`` (module-scoped) starts a Synapse (tests/live/synapse.py) and a Trellis
with a registration shared secret, and registers on each, through the shared-secret
``POST /_synapse/admin/v1/register`` (HMAC), a server admin ``admin`` and the ordinary
users ``alice`` and ``bob``. A test sends one request to both servers and compares what
came back with :func:`assert_same_shape`: the same field names with the same JSON types,
recursively, lists by the shapes of their items. Values differ (IDs, timestamps, server
names); the shape is the contract clients and admin tools rely on.

Use the fixture by importing it into the test module::

    from tests.live.admin_compare import admin_pair  # noqa: F401

Synapse installs itself into a virtualenv of its own the first time (never a skip).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.conftest import backend_environ, free_port, start_homeserver, stop_homeserver
from tests.live.synapse import start_synapse, stop_synapse

PASSWORD = "pw-admin-compare-7c1e"
ORDINARY_USERS = ("alice", "bob")
HTTP_TIMEOUT_S = 30


@dataclass
class Account:
    user_id: str
    access_token: str
    device_id: str


@dataclass
class AdminServer:
    """One of the two servers: where it answers, its shared secret, its accounts."""

    name: str  # "trellis" or "synapse"
    url: str
    server_name: str
    shared_secret: str
    accounts: dict[str, Account] = field(default_factory=dict)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    @property
    def admin(self) -> Account:
        return self.accounts["admin"]

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        """One HTTP request; returns (status, decoded JSON body), for errors too."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None

    def as_admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.call(method, path, body, token=self.admin.access_token)

    def register(
        self,
        localpart: str,
        *,
        admin: bool = False,
        password: str = PASSWORD,
        user_type: str | None = None,
    ) -> Account:
        """Register through the shared-secret admin API (Synapse's documented HMAC)."""
        status, answer = self.call("GET", "/_synapse/admin/v1/register")
        assert status == 200, (self.name, status, answer)
        nonce = answer["nonce"]
        parts = [nonce, localpart, password, "admin" if admin else "notadmin"]
        if user_type:
            parts.append(user_type)
        message = b"\x00".join(part.encode() for part in parts)
        mac = hmac.new(self.shared_secret.encode(), message, hashlib.sha1).hexdigest()
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac,
        }
        if user_type:
            body["user_type"] = user_type
        status, answer = self.call("POST", "/_synapse/admin/v1/register", body)
        assert status == 200, (self.name, status, answer)
        account = Account(answer["user_id"], answer["access_token"], answer["device_id"])
        self.accounts[localpart] = account
        return account

    def fresh_user(self, prefix: str = "u", *, admin: bool = False) -> Account:
        """A newly registered ordinary user, for tests that change or destroy one."""
        return self.register(f"{prefix}{secrets.token_hex(4)}", admin=admin)


Path_ = str | Callable[[AdminServer], str]
Body = Any


@dataclass
class AdminPair:
    trellis: AdminServer
    synapse: AdminServer

    @property
    def servers(self) -> tuple[AdminServer, AdminServer]:
        return (self.trellis, self.synapse)

    def both(
        self,
        method: str,
        path: Path_,
        body: Body = None,
        *,
        token: str | Callable[[AdminServer], str] | None = "admin",
    ) -> tuple[tuple[int, Any], tuple[int, Any]]:
        """The same request to both servers: ((trellis status, body), (synapse status,
        body)). ``path`` and ``body`` may be callables of the server (for its user IDs);
        a string ``path`` may use ``{server_name}``. ``token`` is the name of one of the
        server's accounts ("admin" by default), a callable, or None."""
        answers = []
        for server in self.servers:
            resolved_path = (
                path(server) if callable(path) else path.format(server_name=server.server_name)
            )
            resolved_body = body(server) if callable(body) else body
            if callable(token):
                resolved_token: str | None = token(server)
            elif token is None:
                resolved_token = None
            else:
                resolved_token = server.accounts[token].access_token
            answers.append(server.call(method, resolved_path, resolved_body, resolved_token))
        return answers[0], answers[1]


def quoted(user_id: str) -> str:
    """A user ID as one path segment."""
    return quote(user_id, safe="@:")


# JSON type names, as the spec's OpenAPI calls them.
def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape(value: Any) -> Any:
    """The shape of a JSON value: for an object a dict of field -> shape, for an array a
    one-item list holding the merged shape of its items (``[]`` when empty), otherwise
    the type name ("string", "integer", "number", "boolean", "null")."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = _merge(merged, shape(item))
        return [] if merged is None else [merged]
    return _type_name(value)


def _merge(left: Any, right: Any) -> Any:
    """The shape of items that may be either ``left`` or ``right`` (union of fields)."""
    if left is None:
        return right
    if isinstance(left, dict) and isinstance(right, dict):
        merged = dict(left)
        for key, value in right.items():
            merged[key] = _merge(merged[key], value) if key in merged else value
        return merged
    if isinstance(left, list) and isinstance(right, list):
        if not left or not right:
            return left or right
        return [_merge(left[0], right[0])]
    if left == "null":
        return right
    return left


def _differences(
    ours: Any, theirs: Any, path: str, ignore: set[str], nullable: bool
) -> Iterator[str]:
    if path in ignore:
        return
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs)):
            child = f"{path}.{key}" if path else key
            if child in ignore:
                continue
            if key not in ours:
                yield f"{child}: missing in Trellis (Synapse: {theirs[key]!r})"
            elif key not in theirs:
                yield f"{child}: not in Synapse's answer (Trellis: {ours[key]!r})"
            else:
                yield from _differences(ours[key], theirs[key], child, ignore, nullable)
        return
    if isinstance(ours, list) and isinstance(theirs, list):
        # An empty list says nothing about its items' shape.
        if ours and theirs:
            yield from _differences(ours[0], theirs[0], f"{path}[]", ignore, nullable)
        return
    if nullable and "null" in (ours, theirs):
        return
    if ours != theirs:
        yield f"{path or '(top)'}: Trellis {_describe(ours)}, Synapse {_describe(theirs)}"


def _describe(item: Any) -> str:
    if isinstance(item, dict):
        return "object"
    if isinstance(item, list):
        return "array"
    return str(item)


def assert_same_shape(
    trellis_json: Any, synapse_json: Any, ignore: Iterable[str] = (), *, nullable: bool = True
) -> None:
    """Assert both answers have the same fields with the same JSON types, recursively.

    ``ignore``: dotted paths left out of the comparison, array items written ``[]``
    (e.g. ``"users[].is_guest"``, ``"next_token"``). With ``nullable`` (the default) a
    null matches any type: whether a field is set depends on the data, not the shape.
    """
    problems = list(
        _differences(shape(trellis_json), shape(synapse_json), "", set(ignore), nullable)
    )
    assert not problems, "shapes differ:\n  " + "\n  ".join(problems)


def assert_same_answer(
    answers: tuple[tuple[int, Any], tuple[int, Any]], ignore: Iterable[str] = ()
) -> None:
    """Both servers gave the same status, the same errcode if an error, the same shape."""
    (ours_status, ours), (theirs_status, theirs) = answers
    assert ours_status == theirs_status, (ours_status, ours, theirs_status, theirs)
    if isinstance(theirs, dict) and "errcode" in theirs:
        assert isinstance(ours, dict), ours
        assert ours.get("errcode") == theirs["errcode"], (ours, theirs)
        return
    assert_same_shape(ours, theirs, ignore)


def _populate(server: AdminServer) -> None:
    server.register("admin", admin=True)
    for localpart in ORDINARY_USERS:
        server.register(localpart)


@pytest.fixture(scope="module")
def admin_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminPair]:
    data_dir: Path = tmp_path_factory.mktemp("admin-compare")
    secret = secrets.token_hex(16)
    peer = start_synapse(data_dir / "synapse", free_port())
    try:
        with backend_environ(data_dir, slot=1) as backend:
            trellis_server = start_homeserver(
                data_dir, backend, environ={"TRELLIS_REGISTRATION_SHARED_SECRET": secret}
            )
            try:
                trellis = AdminServer(
                    "trellis", trellis_server.url, trellis_server.server_name, secret
                )
                synapse = AdminServer(
                    "synapse",
                    peer.url,
                    peer.server_name,
                    str(peer.config()["registration_shared_secret"]),
                )
                _populate(trellis)
                _populate(synapse)
                yield AdminPair(trellis, synapse)
            finally:
                stop_homeserver(trellis_server)
    finally:
        stop_synapse(peer)
