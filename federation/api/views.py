"""The federation app's endpoints: this server's keys, and other servers' keys as this
server's notary holds them."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.clock import now_ms
from accounts.services.openid import openid_token_owner
from config.matrix_api import MatrixView, ok
from federation import notary
from federation.keys import server_signing_key
from protocol.errors import MatrixError, bad_json, invalid_param
from protocol.identifiers import is_valid_server_name
from protocol.server_keys import server_keys_json

# keys_server.yaml: originating servers should avoid answering with keys that expire
# within the hour; a week is also the longest any server will believe.
KEYS_VALID_FOR_MS = 7 * 24 * 3600 * 1000

# A millisecond timestamp: ASCII digits only (int() also takes "1_0", " 1" and other
# scripts' digits), few enough for the database.
_TIMESTAMP = re.compile(r"[0-9]{1,18}")


class ServerKeysView(MatrixView):
    # Public: anyone may fetch a server's public keys, unauthenticated.
    authentication_classes: list[type] = []

    def get(self, request: Request, key_id: str = "") -> Response:
        """GET /_matrix/key/v2/server (and the deprecated /_matrix/key/v2/server/{keyId})"""
        return ok(
            server_keys_json(
                settings.SERVER_NAME, [server_signing_key()], now_ms() + KEYS_VALID_FOR_MS
            )
        )


def _server_name(value: object) -> str:
    if not isinstance(value, str) or not is_valid_server_name(value):
        raise invalid_param(f"Invalid server name {value!r}")
    return value


def _key_criteria(server_name: str, criteria: object, default_ts: int) -> notary.ServerKeyQuery:
    """One server's entry of POST /_matrix/key/v2/query's ``server_keys``."""
    if not isinstance(criteria, dict):
        raise bad_json(f"'server_keys.{server_name}' must be an object")
    key_ids: dict[str, int] = {}
    for key_id, criterion in criteria.items():
        if not isinstance(criterion, dict):
            raise bad_json(f"The criteria for {key_id} must be an object")
        minimum = criterion.get("minimum_valid_until_ts")
        if minimum is not None and (not isinstance(minimum, int) or isinstance(minimum, bool)):
            raise bad_json("'minimum_valid_until_ts' must be an integer")
        key_ids[key_id] = default_ts if minimum is None else minimum
    return notary.ServerKeyQuery(server_name, key_ids, default_ts)


class KeyQueryView(MatrixView):
    # Public like the keys themselves: a server asks its notaries before it can check
    # anyone's signature.
    authentication_classes: list[type] = []

    def get(self, request: Request, server_name: str, key_id: str | None = None) -> Response:
        """GET /_matrix/key/v2/query/{serverName}

        Also answers the form with a key ID after the server name, which Matrix 1.6
        dropped but servers still send."""
        raw = request.query_params.get("minimum_valid_until_ts")
        if raw is None:
            minimum = now_ms()
        elif _TIMESTAMP.fullmatch(raw):
            minimum = int(raw)
        else:
            raise invalid_param("'minimum_valid_until_ts' must be a timestamp in milliseconds")
        key_ids = {key_id: minimum} if key_id else {}
        query = notary.ServerKeyQuery(_server_name(server_name), key_ids, minimum)
        return ok(notary.query_keys([query]))


class BatchKeyQueryView(MatrixView):
    authentication_classes: list[type] = []

    def post(self, request: Request) -> Response:
        """POST /_matrix/key/v2/query"""
        body = self.body(request)
        server_keys: Any = body.data.get("server_keys")
        if not isinstance(server_keys, dict):
            raise bad_json("'server_keys' must be an object")
        if len(server_keys) > notary.MAX_SERVERS_PER_QUERY:
            raise invalid_param(
                f"At most {notary.MAX_SERVERS_PER_QUERY} servers may be queried at once"
            )
        now = now_ms()
        queries = [
            _key_criteria(_server_name(name), criteria, now)
            for name, criteria in server_keys.items()
        ]
        return ok(notary.query_keys(queries))


class OpenIdUserInfoView(MatrixView):
    # Server-Server API, "OpenID": the caller is a third party, not a server; no X-Matrix.
    authentication_classes: list[type] = []

    def get(self, request: Request) -> Response:
        """GET /_matrix/federation/v1/openid/userinfo"""
        token = self.query_str(request, "access_token")
        if not token:
            # The endpoint's only error is 401 ("The token was not recognized"); a missing
            # token is told as the Client-Server API tells one: M_MISSING_TOKEN.
            raise MatrixError("M_MISSING_TOKEN", "Missing access token", status=401)
        return ok({"sub": openid_token_owner(token)})
