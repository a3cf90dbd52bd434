"""Outbound calls to identity servers (Identity Service API v2), as a homeserver makes them
for its users: binding and unbinding their addresses, looking an address up and storing a
third-party invite, and checking that an identity server's key is still valid.

The identity server is the one the client names (``id_server``, a ``host[:port]``). It is
not a homeserver: no server discovery, no ``.well-known/matrix``, plain
``https://host[:port]``. Connections go through federation.transport, so they get the
same guard against server-side request forgery (the name must resolve to public addresses
only, or to ones in TRELLIS_FEDERATION_IP_ALLOWLIST, and the connection goes to the
address that was checked), the same certificate checks (the system's authorities, which
SSL_CERT_FILE may replace, plus TRELLIS_FEDERATION_CA_FILE; TRELLIS_FEDERATION_VERIFY_TLS)
and bounds in time and size. Calls authenticated as the user carry the client's
``id_access_token`` as a Bearer token; unbinding is signed as this homeserver (X-Matrix,
its federation signing key), as the Identity Service API asks.

What a client is told when an identity server fails it (every one a Matrix error):

- the identity server answered with a 4xx and a Matrix error code: the same status and
  code (the Client-Server API asks that /3pid/bind "simply proxy any errors received by
  the identity server to the caller"); our own text, not the identity server's;
- it could not be reached, timed out, answered with a 5xx, or with something that is not
  what the Identity Service API says: 502 M_UNKNOWN (a bad gateway: the fault is not the
  client's).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from federation import transport
from federation.client import authorization_header
from protocol.canonical_json import encode_canonical_json
from protocol.errors import MatrixError, invalid_param
from protocol.identifiers import is_valid_server_name, split_port
from protocol.threepids import lookup_hash

logger = logging.getLogger(__name__)

V2 = "/_matrix/identity/v2"
TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 64 * 1024
ERRCODE = re.compile(r"M_[A-Z0-9_]{1,64}")
# Identity Service API, "/v2/3pid/unbind": an identity server that answers these does not
# support unbinding by a homeserver, or does not know the binding (Synapse reads them so).
UNBIND_NOT_SUPPORTED = (400, 404, 501)


@dataclass(frozen=True, slots=True)
class IdentityServer:
    """An identity server as the client named it: ``host[:port]``."""

    name: str
    host: str
    port: int


def identity_server(value: str) -> IdentityServer:
    """The identity server a client names; 400 M_INVALID_PARAM unless it is a
    ``host[:port]`` (no scheme, no path)."""
    if not is_valid_server_name(value):
        raise invalid_param(f"'id_server' must be a host name with an optional port: {value!r}")
    host, port = split_port(value)
    return IdentityServer(value, host.strip("[]"), port or 443)


class IdentityServerError(MatrixError):
    """An identity server could not be reached or gave no usable answer: 502 M_UNKNOWN."""


def unreachable(server: str, why: str) -> IdentityServerError:
    logger.info("identity server %s failed: %s", server, why)
    return IdentityServerError(
        "M_UNKNOWN", f"The identity server {server} could not be used", status=502
    )


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    data: Any  # the parsed JSON body, or None when there is none


def _send(
    server: IdentityServer,
    method: str,
    path: str,
    *,
    access_token: str | None = None,
    content: Any = None,
    signed: bool = False,
) -> Answer:
    target = transport.Target(
        scheme="https",
        connect_host=server.host,
        port=server.port,
        tls_hostname=server.host,
        host_header=server.name,
    )
    headers = {"Accept": "application/json"}
    body = None
    if content is not None:
        body = encode_canonical_json(content)
        headers["Content-Type"] = "application/json"
    if access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    if signed:
        headers["Authorization"] = authorization_header(server.name, method, path, content)
    try:
        response = transport.send(
            target,
            method,
            path,
            headers=headers,
            body=body,
            timeout_s=TIMEOUT_S,
            max_bytes=MAX_ANSWER_BYTES,
        )
    except transport.TransportError as exc:
        raise unreachable(server.name, str(exc)) from None
    try:
        data = json.loads(response.body.decode("utf-8")) if response.body.strip() else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None
    return Answer(response.status, data)


def _ok_object(server: IdentityServer, answer: Answer, what: str) -> dict[str, Any]:
    """A 200 answer's JSON object; the identity server's 4xx Matrix error passed on, or 502."""
    if answer.status == 200 and isinstance(answer.data, dict):
        return answer.data
    errcode = answer.data.get("errcode") if isinstance(answer.data, dict) else None
    if 400 <= answer.status < 500 and isinstance(errcode, str) and ERRCODE.fullmatch(errcode):
        raise MatrixError(
            errcode,
            f"The identity server {server.name} refused to {what} ({errcode})",
            status=answer.status,
        )
    raise unreachable(server.name, f"{what}: answered {answer.status}")


def _required_str(server: IdentityServer, data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise unreachable(server.name, f"answer without a string {key!r}")
    return value


# --- associations ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bound:
    medium: str
    address: str


def bind(
    server: IdentityServer, access_token: str, *, sid: str, client_secret: str, mxid: str
) -> Bound:
    """POST /_matrix/identity/v2/3pid/bind: the identity server's validated session ``sid``
    becomes a binding of its address to ``mxid``; the address it bound."""
    answer = _send(
        server,
        "POST",
        f"{V2}/3pid/bind",
        access_token=access_token,
        content={"sid": sid, "client_secret": client_secret, "mxid": mxid},
    )
    data = _ok_object(server, answer, "bind the address")
    if data.get("mxid") not in (None, mxid):
        raise unreachable(server.name, "bound the address to another user")
    return Bound(_required_str(server, data, "medium"), _required_str(server, data, "address"))


@dataclass(frozen=True, slots=True)
class Validated:
    medium: str
    address: str
    validated_at_ms: int


def validated_threepid(
    server: IdentityServer, access_token: str, *, sid: str, client_secret: str
) -> Validated:
    """GET /_matrix/identity/v2/3pid/getValidated3pid: the address the identity server
    validated in session ``sid``. A session it does not hold as validated (any 4xx) is
    403 M_THREEPID_AUTH_FAILED, as the deprecated POST /account/3pid answers it."""
    query = urlencode({"sid": sid, "client_secret": client_secret})
    answer = _send(server, "GET", f"{V2}/3pid/getValidated3pid?{query}", access_token=access_token)
    if 400 <= answer.status < 500:
        raise MatrixError(
            "M_THREEPID_AUTH_FAILED",
            f"The identity server {server.name} has not validated this session",
            status=403,
        )
    data = _ok_object(server, answer, "tell the validated address")
    validated_at = data.get("validated_at")
    if not isinstance(validated_at, int) or isinstance(validated_at, bool):
        raise unreachable(server.name, "getValidated3pid answer without validated_at")
    return Validated(
        _required_str(server, data, "medium"), _required_str(server, data, "address"), validated_at
    )


def unbind(server: IdentityServer, *, mxid: str, medium: str, address: str) -> bool:
    """POST /_matrix/identity/v2/3pid/unbind, signed by this homeserver: True once the
    identity server has removed the binding, False when it does not support that or
    does not know the binding (Client-Server API: ``no-support``)."""
    content = {"mxid": mxid, "threepid": {"medium": medium, "address": address}}
    answer = _send(server, "POST", f"{V2}/3pid/unbind", content=content, signed=True)
    if answer.status == 200:
        return True
    if answer.status in UNBIND_NOT_SUPPORTED:
        logger.info("identity server %s did not unbind (%s)", server.name, answer.status)
        return False
    raise unreachable(server.name, f"unbind: answered {answer.status}")


def lookup(server: IdentityServer, access_token: str, *, medium: str, address: str) -> str | None:
    """The Matrix user ID bound to the address, by a hashed lookup (GET /hash_details,
    then POST /lookup with sha256, or "none" where that is all it offers); None when
    nobody is."""
    details = _ok_object(
        server, _send(server, "GET", f"{V2}/hash_details", access_token=access_token), "look up"
    )
    algorithms = details.get("algorithms")
    pepper = details.get("lookup_pepper")
    if not isinstance(algorithms, list) or not isinstance(pepper, str):
        raise unreachable(server.name, "hash_details without algorithms and a pepper")
    if "sha256" in algorithms:
        # Identity Service API, "Client behaviour": SHA-256 of "<address> <medium>
        # <pepper>", URL-safe unpadded base64.
        key, algorithm = lookup_hash(address, medium, pepper), "sha256"
    elif "none" in algorithms:
        key, algorithm = f"{address} {medium}", "none"
    else:
        raise unreachable(server.name, f"no lookup algorithm we know among {algorithms!r}")
    content = {"addresses": [key], "algorithm": algorithm, "pepper": pepper}
    answer = _send(server, "POST", f"{V2}/lookup", access_token=access_token, content=content)
    mappings = _ok_object(server, answer, "look up").get("mappings")
    if not isinstance(mappings, dict):
        raise unreachable(server.name, "lookup answer without mappings")
    mxid = mappings.get(key)
    return mxid if isinstance(mxid, str) and mxid else None


# --- invitation storage ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredInvite:
    token: str
    display_name: str
    # The identity server's public_keys entries: {public_key, key_validity_url?}.
    public_keys: list[dict[str, str]]
    # The key for the event's top-level public_key and key_validity_url (kept for older
    # servers): the answer's own public_key if it has one, else the first of public_keys.
    fallback: dict[str, str]


def store_invite(
    server: IdentityServer, access_token: str, fields: dict[str, Any]
) -> StoredInvite:
    """POST /_matrix/identity/v2/store-invite with ``fields`` (medium, address, room_id,
    sender and the optional room and sender details): the token and keys for the
    m.room.third_party_invite event."""
    answer = _send(server, "POST", f"{V2}/store-invite", access_token=access_token, content=fields)
    data = _ok_object(server, answer, "store the invite")
    token = _required_str(server, data, "token")
    if not re.fullmatch(r"[0-9a-zA-Z.=_-]{1,255}", token):
        raise unreachable(server.name, "store-invite token is not a valid state key")
    public_keys: list[dict[str, str]] = []
    for entry in data.get("public_keys") or []:
        if isinstance(entry, dict) and isinstance(entry.get("public_key"), str):
            key = {"public_key": entry["public_key"]}
            if isinstance(entry.get("key_validity_url"), str):
                key["key_validity_url"] = entry["key_validity_url"]
            public_keys.append(key)
    if isinstance(data.get("public_key"), str):
        # The older answer's single key is the identity server's long-term one.
        fallback = {
            "public_key": data["public_key"],
            "key_validity_url": f"https://{server.name}{V2}/pubkey/isvalid",
        }
    elif public_keys:
        fallback = public_keys[0]
    else:
        raise unreachable(server.name, "store-invite answer without public keys")
    display_name = data.get("display_name")
    return StoredInvite(
        token,
        display_name if isinstance(display_name, str) else "",
        public_keys or [fallback],
        fallback,
    )


def key_is_valid(key_validity_url: str, public_key: str) -> bool:
    """Whether an identity server still vouches for ``public_key``: GET its
    ``key_validity_url`` with ``public_key`` in the query must answer ``{"valid": true}``
    (Identity Service API, "Key management"). Anything else, including no answer, is
    "not valid". Only https URLs on a host[:port] are followed, through the same guard."""
    parts = urlsplit(key_validity_url)
    netloc = parts.netloc
    if parts.scheme != "https" or not is_valid_server_name(netloc) or parts.fragment:
        logger.info("not following key validity URL %r", key_validity_url)
        return False
    server = identity_server(netloc)
    query = urlencode({"public_key": public_key}, quote_via=quote)
    path = (parts.path or "/") + "?" + (f"{parts.query}&{query}" if parts.query else query)
    try:
        answer = _send(server, "GET", path)
    except MatrixError:
        return False
    return (
        answer.status == 200 and isinstance(answer.data, dict) and answer.data.get("valid") is True
    )
