"""Path parameters that contain an encoded ``/`` (``%2F``).

A transaction ID, a state key, an account data type or a tag may contain ``/``;
clients send it percent-encoded, as one path segment (Client-Server API, "Conventions
for Matrix APIs": path parameters are URL-encoded). The HTTP server hands Django the
*decoded* path, where ``tx%2F1`` has become ``tx/1``, two segments, and no route
matches. So when the raw path has a ``%2F``, the request is routed on the raw path with
every escape decoded except ``%2F`` and ``%25`` (so that ``%252F``, a literal ``%2F``,
stays distinct), and each captured parameter is decoded afterwards, as Synapse does.

The raw path comes from the ASGI scope's ``raw_path`` (Daphne), or, under WSGI, from
``RAW_URI`` or ``REQUEST_URI`` (gunicorn, uWSGI, mod_wsgi, and the test client).
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
# The two escapes a routing path keeps, written in upper case.
_KEPT = {0x2F, 0x25}
_KEPT_ESCAPE = re.compile(r"%(?:2F|25)")


def _decode_but_slash(match: re.Match[bytes]) -> bytes:
    byte = int(match.group(1), 16)
    return b"%" + match.group(1).upper() if byte in _KEPT else bytes([byte])


def routing_path(raw_path: bytes, script_name: str = "") -> str | None:
    """The path to route on when ``raw_path`` has an encoded ``/``: decoded but for
    ``%2F`` and ``%25``, without ``script_name``. None when the ordinary decoded path
    does as well (no ``%2F``), or when the raw path is not UTF-8."""
    if b"%2f" not in raw_path.lower():
        return None
    try:
        path = _ESCAPE.sub(_decode_but_slash, raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if script_name and path.startswith(script_name):
        path = path[len(script_name) :]
    return path


def unescape_parameter(value: str) -> str:
    """A parameter captured from a routing path, decoded: ``%2F`` -> ``/``, ``%25`` -> ``%``."""
    if "%" not in value:
        return value
    return _KEPT_ESCAPE.sub(lambda m: "/" if m.group(0) == "%2F" else "%", value)


def raw_path_of(request: Any) -> bytes | None:
    """The request's path as the client sent it, if the server told us."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        raw = scope.get("raw_path")
        return raw if isinstance(raw, bytes) else None
    uri = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if not uri:
        return None
    return str(uri).split("?", 1)[0].encode("latin-1", "replace")


def request_routing_path(request: Any) -> str | None:
    """The routing path of a Django request (see :func:`routing_path`), or None."""
    raw = raw_path_of(request)
    if raw is None:
        return None
    return routing_path(raw, request.META.get("SCRIPT_NAME", "") or "")


def scope_routing_path(scope: dict[str, Any]) -> str:
    """The path an ASGI request is routed on."""
    raw = scope.get("raw_path")
    routed = routing_path(raw) if isinstance(raw, bytes) else None
    return routed if routed is not None else str(scope["path"])
