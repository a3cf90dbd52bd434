"""Query parameters of the admin API's lists: offsets, limits, directions, booleans,
each refused with 400 M_INVALID_PARAM when malformed (as Synapse answers)."""

from __future__ import annotations

from rest_framework.request import Request

from protocol.errors import invalid_param


def non_negative_int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return _parsed(name, raw)


def _parsed(name: str, raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise invalid_param(f"Query parameter {name!r} must be a non-negative integer")
    return int(raw)


def offset_and_limit(request: Request, default_limit: int = 100) -> tuple[int, int]:
    start = _parsed("from", request.query_params.get("from", "0"))
    limit = _parsed("limit", request.query_params.get("limit", str(default_limit)))
    return start, limit


def backwards(request: Request, default: str = "f") -> bool:
    direction = request.query_params.get("dir", default)
    if direction not in ("f", "b"):
        raise invalid_param("Query parameter 'dir' must be one of ['b', 'f']")
    return direction == "b"


def choice(request: Request, name: str, choices: tuple[str, ...] | list[str], default: str) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise invalid_param(f"Query parameter {name!r} must be one of {sorted(choices)}")
    return value


def optional_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise invalid_param(f"Query parameter {name!r} must be 'true' or 'false'")
    return raw == "true"
