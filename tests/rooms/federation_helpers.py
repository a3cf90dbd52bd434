"""Requests from remote servers (tests/graph/remote.py's RemoteServer) to this server's
federation endpoints, signed with X-Matrix as the remote server would sign them."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from protocol.x_matrix import format_authorization, sign_request
from tests.conftest import MatrixTestClient, Response
from tests.graph.remote import RemoteServer

F = "/_matrix/federation/v1"


def fed(
    api: MatrixTestClient,
    server: RemoteServer | None,
    method: str,
    path: str,
    body: Any = None,
) -> Response:
    """``method path`` (unencoded: the IDs used here need no escaping) from ``server``,
    signed by it; unsigned when ``server`` is None."""
    headers = {}
    if server is not None:
        auth = sign_request(
            server.signing_key, method, path, server.server_name, settings.SERVER_NAME, body
        )
        headers["Authorization"] = format_authorization(auth)
    response = api.client.generic(
        method,
        path,
        data=json.dumps(body) if body is not None else "",
        content_type="application/json",
        headers=headers,
        RAW_URI=path,
    )
    content = response.content
    return Response(response.status_code, json.loads(content) if content else None, {})
