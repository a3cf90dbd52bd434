"""Canonical JSON (content/appendices.md#canonical-json).

The byte string that Matrix hashes and signs: UTF-8, no insignificant whitespace, object keys
sorted by code point, non-ASCII emitted literally. Room versions 6 and later require strict values
(integers within ±(2**53-1), no floats: content/rooms/fragments/v6-canonical-json.md); versions
1..5 must not enforce that (content/rooms/fragments/v1-canonical-json.md), so `strict=False`
accepts them.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import canonicaljson
import orjson

# content/appendices.md#canonical-json: integers in the range [-(2**53)+1, (2**53)-1].
CANONICAL_JSON_MAX_INT = 2**53 - 1
CANONICAL_JSON_MIN_INT = -CANONICAL_JSON_MAX_INT


class CanonicalJSONError(ValueError):
    """The value cannot be represented as (strict) canonical JSON."""


def _normalise(obj: object, strict: bool, floats: list[float] | None = None) -> object:
    """Check `obj` recursively and return a value the stdlib encoder accepts.

    Containers are only copied when a nested value had to change (a non-dict Mapping or a tuple),
    so plain dict/list input is checked without allocation. Parsed JSON (plain dicts, lists,
    strings) takes the exact-type branches first: every event received over federation is
    encoded several times (size, content hash, signature, event ID), and the ABC checks of the
    general branches cost more than the encoding itself.
    """
    kind = type(obj)
    if kind is str:
        return obj
    if kind is dict:
        return _normalise_dict(obj, strict, floats)  # type: ignore[arg-type]
    if kind is list:
        return _normalise_list(obj, strict, floats)  # type: ignore[arg-type]
    return _normalise_other(obj, strict, floats)


def _normalise_dict(obj: dict[Any, Any], strict: bool, floats: list[float] | None) -> object:
    copy: dict[str, object] | None = None
    for index, (key, value) in enumerate(obj.items()):
        if type(key) is not str and not isinstance(key, str):
            raise CanonicalJSONError(f"object keys must be strings, got {type(key).__name__}")
        new_value = value if type(value) is str else _normalise(value, strict, floats)
        if new_value is not value and copy is None:
            copy = dict(list(obj.items())[:index])
        if copy is not None:
            copy[key] = new_value
    return obj if copy is None else copy


def _normalise_list(obj: list[Any], strict: bool, floats: list[float] | None) -> object:
    copy: list[object] | None = None
    for index, value in enumerate(obj):
        new_value = value if type(value) is str else _normalise(value, strict, floats)
        if new_value is not value and copy is None:
            copy = obj[:index]
        if copy is not None:
            copy.append(new_value)
    return obj if copy is None else copy


def _normalise_other(obj: object, strict: bool, floats: list[float] | None) -> object:
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, int):
        if strict and not CANONICAL_JSON_MIN_INT <= obj <= CANONICAL_JSON_MAX_INT:
            raise CanonicalJSONError(f"integer out of canonical JSON range: {obj}")
        return obj
    if isinstance(obj, float):
        if strict:
            raise CanonicalJSONError(f"floats are not allowed in canonical JSON: {obj!r}")
        if not math.isfinite(obj):
            raise CanonicalJSONError(f"non-finite number cannot be encoded: {obj!r}")
        if floats is not None:
            floats.append(obj)
        return obj
    if isinstance(obj, Mapping):
        changed = not isinstance(obj, dict)
        items: dict[str, object] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"object keys must be strings, got {type(key).__name__}")
            new_value = _normalise(value, strict, floats)
            changed = changed or new_value is not value
            items[key] = new_value
        return items if changed else obj
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        changed = not isinstance(obj, list)
        elements: list[object] = []
        for value in obj:
            new_value = _normalise(value, strict, floats)
            changed = changed or new_value is not value
            elements.append(new_value)
        return elements if changed else obj
    raise CanonicalJSONError(f"{type(obj).__name__} cannot be encoded as canonical JSON")


def check_canonical_json_values(obj: object, *, strict: bool = True) -> None:
    """Raise CanonicalJSONError unless `obj` is encodable as canonical JSON.

    With `strict` (room versions 6+), also reject floats and integers outside ±(2**53-1).
    """
    _normalise(obj, strict)


def encode_canonical_json(obj: object, *, strict: bool = True) -> bytes:
    """Encode `obj` as canonical JSON bytes.

    `strict=True` enforces the value rules of room versions 6+; pass `strict=False` for hashing and
    signing events of room versions 1..5, which may legitimately contain floats or large integers.
    """
    floats: list[float] = []
    normalised = _normalise(obj, strict, floats)
    if not floats:
        # orjson writes canonical JSON's bytes (sorted keys, no whitespace, UTF-8, the
        # same escapes) several times faster than the stdlib encoder; floats (room
        # versions 1..5 only) keep the stdlib's repr, which other servers sign, and an
        # integer beyond 64 bits falls through to the stdlib too.
        try:
            return orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    try:
        return canonicaljson.encode_canonical_json(normalised)
    except UnicodeEncodeError as e:
        # Lone surrogates (e.g. from "\ud800" in received JSON) have no UTF-8 encoding.
        raise CanonicalJSONError("string is not valid Unicode") from e
    except ValueError as e:
        raise CanonicalJSONError(str(e)) from e


def _reject_constant(name: str) -> Any:
    raise CanonicalJSONError(f"{name} is not valid JSON")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CanonicalJSONError(f"duplicate key in JSON object: {key!r}")
        result[key] = value
    return result


def _parse_number_with_fraction_or_exponent(text: str) -> int | float:
    """Numbers such as `1e10` or `2.0` that denote a safe integer become ints.

    appendices.md#canonical-json (examples): `{"b": 1e10}` canonicalises to `{"b":10000000000}`.
    Anything else stays a float, which strict encoding then rejects.
    """
    value = decimal.Decimal(text)
    if (
        value.is_finite()
        and abs(value) <= CANONICAL_JSON_MAX_INT
        and value == value.to_integral_value()
    ):
        return int(value)
    result = float(text)
    if not math.isfinite(result):
        raise CanonicalJSONError(f"number out of range: {text}")
    return result


def json_loads_strict(data: str | bytes | bytearray) -> Any:
    """Parse JSON, rejecting `NaN`/`Infinity`/`-Infinity` and objects with duplicate keys.

    Numbers written with a fraction or exponent that denote a safe integer (`1e10`, `3.0`) are
    returned as ints, as in the spec's canonical JSON examples.

    Raises CanonicalJSONError (a ValueError) on any malformed input. Floats and large integers are
    still returned; use `check_canonical_json_values` where the room version requires strictness.
    """
    try:
        return json.loads(
            data,
            parse_constant=_reject_constant,
            parse_float=_parse_number_with_fraction_or_exponent,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except CanonicalJSONError:
        raise
    except (ValueError, RecursionError) as e:
        # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise CanonicalJSONError(f"invalid JSON: {e}") from e
