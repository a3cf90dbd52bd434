"""Shared pieces for the Client-Server API views: body parsing, validation, rendering.

Views subclass :class:`MatrixView`, read their JSON body with :meth:`MatrixView.body`
(a :class:`Body`, whose getters raise the right Matrix error for a wrong shape) and
return plain dicts through :func:`ok`.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from protocol.errors import MatrixError, bad_json, guest_access_forbidden, missing_param
from protocol.identifiers import check_bounded

T = TypeVar("T")


def _reject_constant(value: str) -> None:
    raise ValueError(f"{value} is not valid JSON")


def _unstorable(value: Any) -> str | None:
    """Why a parsed JSON value cannot be stored, or None.

    PostgreSQL stores neither U+0000 nor lone UTF-16 surrogates ("\\ud800"), and a
    number too large for a double parses to infinity, which is not JSON.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return "Strings must not contain U+0000"
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "Strings must not contain unpaired surrogates"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "Numbers must be finite"
    if isinstance(value, dict):
        for key, item in value.items():
            reason = _unstorable(key) or _unstorable(item)
            if reason:
                return reason
        return None
    if isinstance(value, list):
        for item in value:
            reason = _unstorable(item)
            if reason:
                return reason
    return None


def parse_json(raw: bytes) -> Any:
    """Parse a request body; raise M_NOT_JSON for anything that is not strict JSON.

    Values that cannot be stored (U+0000, lone surrogates, infinite numbers) are refused
    with M_BAD_JSON.
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MatrixError("M_NOT_JSON", "Content not JSON") from None
    try:
        reason = _unstorable(data)
    except RecursionError:
        raise MatrixError("M_BAD_JSON", "Content is nested too deeply") from None
    if reason:
        raise bad_json(reason)
    return data


_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    dict: "an object",
    list: "an array",
}


class Body:
    """A JSON object from a request, with typed getters that raise Matrix errors."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, kind: type[T], required: bool, default: T | None) -> T | None:
        if key not in self.data or (self.data[key] is None and not required):
            if required:
                raise missing_param(key)
            return default
        value = self.data[key]
        # bool is an int in Python; JSON keeps them apart.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad_json(f"'{key}' must be {_TYPE_NAMES.get(kind, kind.__name__)}")
        return value

    def str(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        return self._get(key, str, required, default)

    def req_str(self, key: str) -> str:
        value = self._get(key, str, True, None)
        assert value is not None
        return value

    def bool(self, key: str, *, default: bool = False) -> bool:
        value = self._get(key, bool, False, default)
        assert value is not None
        return value

    def int(self, key: str, *, required: bool = False, default: int | None = None) -> int | None:
        return self._get(key, int, required, default)

    def dict(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        return self._get(key, dict, required, None)

    def list(self, key: str, *, required: bool = False) -> list[Any] | None:
        return self._get(key, list, required, None)


class MatrixView(APIView):
    """Base class of every Matrix endpoint.

    Authentication is by access token (accounts.authentication); views that need a
    user set ``requires_auth = True``. The body is parsed as JSON whatever the
    Content-Type, as Matrix clients do not all send one.
    """

    requires_auth = False
    # The methods that need an access token when ``requires_auth`` is off for the rest
    # (e.g. GET of a profile field needs none, PUT does).
    auth_methods: frozenset[str] = frozenset()
    # Client-Server API, "Guest access": the methods needing a token that a guest account
    # may call (the module's list of endpoints); any other answers a guest 403
    # M_GUEST_ACCESS_FORBIDDEN. Methods open without a token stay open to guests.
    guest_methods: frozenset[str] = frozenset()
    # Path parameters are identifiers the spec bounds at 255 bytes (room, user and event
    # IDs, aliases, event types, state keys) or values kept in 255-character columns
    # (transaction IDs, device IDs, tags, account data types, key backup versions and
    # sessions, media IDs): a longer one is refused with 400 M_INVALID_PARAM before any
    # work. A view lists here the parameters that have another limit or errcode.
    unbounded_path_params: tuple[str, ...] = ()
    # POST /logout and /logout/all: the only endpoints a locked account may use.
    allowed_when_locked = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Path and query parameters reach database lookups; U+0000 cannot (see above).
        params = list(kwargs.values())
        for key, values in request.query_params.lists():
            params += [key, *values]
        if any("\x00" in p for p in params if isinstance(p, str)):
            raise MatrixError("M_INVALID_PARAM", "Parameters must not contain U+0000")
        for name, value in kwargs.items():
            if isinstance(value, str) and name not in self.unbounded_path_params:
                check_bounded(value, f"The path parameter '{name}'")
        super().initial(request, *args, **kwargs)
        user = request.user
        needs_token = self.requires_auth or request.method in self.auth_methods
        if needs_token and user is None:
            raise MatrixError("M_MISSING_TOKEN", "Missing access token")
        # Client-Server API, "Account locking": 401 M_USER_LOCKED on all but /logout.
        if getattr(request.user, "is_locked", False) and not self.allowed_when_locked:
            raise MatrixError(
                "M_USER_LOCKED", "This account has been locked", status=401, soft_logout=True
            )
        # The user row came with the session: telling a guest costs no query. (A view
        # authenticating other servers has a RemoteServer for its user, never a guest.)
        is_guest = getattr(user, "is_guest", False)
        if needs_token and is_guest and request.method not in self.guest_methods:
            raise guest_access_forbidden()

    def body(self, request: Request, *, allow_empty: bool = False) -> Body:
        raw = request._request.body
        if not raw.strip() and allow_empty:
            return Body({})
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise bad_json("Content must be a JSON object")
        return Body(data)

    def query_str(self, request: Request, name: str, *, required: bool = False) -> str | None:
        value = request.query_params.get(name)
        if value is None and required:
            raise missing_param(name)
        return value


def ok(data: Any = None, status: int = 200) -> Response:
    return Response({} if data is None else data, status=status)
