"""Outbound requests to other servers, signed with this server's key (X-Matrix).

Spec: content/server-server-api.md#request-authentication. The signed ``uri`` is exactly
the path and query sent on the wire; the destination is the server name before any
delegation.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from federation import discovery, transport
from federation.keys import server_signing_key
from federation.transport import HttpResponse, TransportError, send
from protocol.canonical_json import encode_canonical_json
from protocol.x_matrix import format_authorization, sign_request


class FederationError(Exception):
    """A request to another server failed: it could not be reached, or it answered with an
    error or something that is not what was asked for."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ResponseTooLarge(FederationError):
    """The server answered with more than the caller's ``max_bytes``."""


def authorization_header(destination: str, method: str, path: str, content: Any = None) -> str:
    """The ``Authorization`` header value for a request from this server."""
    auth = sign_request(
        server_signing_key(), method, path, settings.SERVER_NAME, destination, content
    )
    return format_authorization(auth)


def send_request(
    destination: str,
    method: str,
    path: str,
    *,
    content: Any = None,
    signed: bool = True,
    timeout_s: float | None = None,
    max_bytes: int | None = None,
) -> HttpResponse:
    """Send a request to ``destination`` (a server name) and return its answer, whatever the
    status. ``path`` is the already-encoded target (``/_matrix/...?query``); ``content`` is
    the JSON body for PUT/POST. Each discovered target is tried in turn.

    Raises FederationError when the name cannot be resolved or no target answered,
    ResponseTooLarge when the answer is longer than ``max_bytes``.
    """
    body = None
    headers = {}
    if content is not None:
        body = encode_canonical_json(content)
        headers["Content-Type"] = "application/json"
    if signed:
        headers["Authorization"] = authorization_header(destination, method, path, content)
    try:
        targets = discovery.resolve(destination)
    except discovery.DiscoveryError as exc:
        raise FederationError(str(exc)) from exc
    last_error: Exception | None = None
    for target in targets:
        try:
            return send(
                target,
                method,
                path,
                headers=headers,
                body=body,
                timeout_s=timeout_s or settings.FEDERATION_TIMEOUT_S,
                max_bytes=max_bytes or settings.FEDERATION_MAX_JSON_BYTES,
            )
        except transport.ResponseTooLarge as exc:
            raise ResponseTooLarge(f"{destination} answered with too much: {exc}") from exc
        except TransportError as exc:
            last_error = exc
    raise FederationError(f"cannot reach {destination}: {last_error}")


def request_json(
    destination: str,
    method: str,
    path: str,
    *,
    content: Any = None,
    signed: bool = True,
    timeout_s: float | None = None,
) -> Any:
    """Send a request and return its parsed JSON answer; FederationError unless the answer
    is a 200 with a JSON body."""
    response = send_request(
        destination, method, path, content=content, signed=signed, timeout_s=timeout_s
    )
    if response.status != 200:
        raise FederationError(
            f"{destination} answered {method} {path} with {response.status}",
            status=response.status,
        )
    try:
        return json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FederationError(f"{destination} answered with something that is not JSON") from exc
