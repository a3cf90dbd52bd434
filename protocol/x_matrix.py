"""Request authentication between servers: the ``X-Matrix`` Authorization header.

Spec: content/server-server-api.md#request-authentication. The request method, target
(path and query, exactly as sent), origin, destination and JSON body are wrapped in a JSON
object which the origin signs with the JSON signing algorithm; the signature travels in
``Authorization: X-Matrix origin=...,destination=...,key=...,sig=...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.identifiers import is_valid_server_name
from protocol.signing import (
    ED25519,
    SigningKey,
    VerifyKey,
    compute_signature,
    is_valid_key_version,
    verify_signed_json,
)

SCHEME = "X-Matrix"

# RFC 9110 section 5.6.2: tchar. The spec asks recipients to accept ':' unquoted too (older
# senders leave server names with ports unquoted).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_UNQUOTED_VALUE = r"[!#$%&'*+\-.^_`|~0-9A-Za-z:]+"
# RFC 9110 section 5.6.4: quoted-string, with quoted-pair (a backslash and any visible or
# whitespace character) inside.
_QUOTED_VALUE = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x09\x20-\x7e\x80-\xff])*"'
_PARAM = re.compile(
    rf"(?P<name>{_TOKEN})[ \t]*=[ \t]*(?:(?P<quoted>{_QUOTED_VALUE})|(?P<bare>{_UNQUOTED_VALUE}))"
)
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


class XMatrixHeaderError(ValueError):
    """The Authorization header is not a well-formed X-Matrix header."""


@dataclass(frozen=True, slots=True)
class XMatrixAuthorization:
    """The parameters of one ``X-Matrix`` Authorization header."""

    origin: str
    # Added in v1.3; older senders leave it out.
    destination: str | None
    key_id: str
    signature: str


def is_x_matrix(header: str) -> bool:
    """True if the header uses the X-Matrix scheme (auth schemes are case-insensitive)."""
    scheme, _, _ = header.partition(" ")
    return scheme.lower() == SCHEME.lower()


def _unquote(quoted: str) -> str:
    return _QUOTED_PAIR.sub(lambda m: m.group(1), quoted[1:-1])


def parse_params(params: str) -> dict[str, str]:
    """The ``name=value`` pairs after the scheme (RFC 9110 section 11.4).

    Names are lower-cased; quoted values are unescaped. A name given twice is an error: the
    two values could not both be what the sender signed.
    """
    result: dict[str, str] = {}
    position = 0
    while True:
        match = _PARAM.match(params, position)
        if match is None:
            raise XMatrixHeaderError(f"malformed parameter at offset {position}")
        name = match.group("name").lower()
        quoted = match.group("quoted")
        value = _unquote(quoted) if quoted is not None else match.group("bare")
        if name in result:
            raise XMatrixHeaderError(f"parameter {name!r} given twice")
        result[name] = value
        position = match.end()
        if position == len(params):
            return result
        separator = _SEPARATOR.match(params, position)
        if separator is None:
            raise XMatrixHeaderError(f"expected ',' at offset {position}")
        position = separator.end()


def _check_key_id(key_id: str) -> None:
    algorithm, sep, version = key_id.partition(":")
    if not sep or algorithm != ED25519 or not is_valid_key_version(version):
        raise XMatrixHeaderError(f"unsupported key ID {key_id!r}")


def parse_authorization(header: str) -> XMatrixAuthorization:
    """Parse an ``Authorization: X-Matrix ...`` header value.

    Raises XMatrixHeaderError when the scheme is not X-Matrix, the parameters do not follow
    the grammar, ``origin``, ``key`` or ``sig`` is missing, or a server name or key ID is
    malformed. Unknown parameters are ignored.
    """
    scheme, sep, rest = header.partition(" ")
    if scheme.lower() != SCHEME.lower() or not sep:
        raise XMatrixHeaderError("not an X-Matrix Authorization header")
    params = parse_params(rest.lstrip(" "))
    missing = [name for name in ("origin", "key", "sig") if name not in params]
    if missing:
        raise XMatrixHeaderError(f"missing parameter(s): {', '.join(missing)}")
    origin = params["origin"]
    destination = params.get("destination")
    if not is_valid_server_name(origin):
        raise XMatrixHeaderError("origin is not a valid server name")
    if destination is not None and not is_valid_server_name(destination):
        raise XMatrixHeaderError("destination is not a valid server name")
    _check_key_id(params["key"])
    return XMatrixAuthorization(origin, destination, params["key"], params["sig"])


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_authorization(auth: XMatrixAuthorization) -> str:
    """The header value, the way the spec asks senders to write it: one space after the
    scheme, lower-case names, quoted values, no whitespace around the commas."""
    params = [("origin", auth.origin)]
    if auth.destination is not None:
        params.append(("destination", auth.destination))
    params += [("key", auth.key_id), ("sig", auth.signature)]
    return f"{SCHEME} " + ",".join(f"{name}={_quote(value)}" for name, value in params)


def request_json(
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: Any = None,
) -> dict[str, Any]:
    """The JSON object whose signature authenticates a request (step 1 of the spec).

    ``uri`` is the request target from ``/_matrix/...`` with ``?`` and the query if any,
    exactly as sent; ``content`` is the parsed JSON body, or None for a request without one.
    """
    obj: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(
    signing_key: SigningKey,
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: Any = None,
) -> XMatrixAuthorization:
    """The Authorization parameters for a request from ``origin`` to ``destination``."""
    signature = compute_signature(
        request_json(method, uri, origin, destination, content), signing_key
    )
    return XMatrixAuthorization(origin, destination, signing_key.key_id, signature)


def verify_request(
    auth: XMatrixAuthorization,
    verify_key: VerifyKey,
    method: str,
    uri: str,
    destination: str,
    content: Any = None,
) -> None:
    """Raise SignatureVerifyError unless ``auth`` signs this request with ``verify_key``.

    ``destination`` is the receiving server's own name: senders that leave the header's
    ``destination`` out still signed it (it was part of the signed JSON before v1.3).
    The caller checks that a given ``auth.destination`` is this server first.
    """
    obj: Mapping[str, Any] = {
        **request_json(method, uri, auth.origin, destination, content),
        "signatures": {auth.origin: {auth.key_id: auth.signature}},
    }
    verify_signed_json(obj, auth.origin, verify_key)
