"""The federation app's endpoints: this server's keys."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.clock import now_ms
from config.matrix_api import MatrixView, ok
from federation.keys import server_signing_key
from protocol.server_keys import server_keys_json

# keys_server.yaml: originating servers should avoid answering with keys that expire
# within the hour; a week is also the longest any server will believe.
KEYS_VALID_FOR_MS = 7 * 24 * 3600 * 1000


class ServerKeysView(MatrixView):
    # Public: anyone may fetch a server's public keys, unauthenticated.
    authentication_classes: list[type] = []

    def get(self, request: Request) -> Response:
        """GET /_matrix/key/v2/server"""
        return ok(
            server_keys_json(
                settings.SERVER_NAME, [server_signing_key()], now_ms() + KEYS_VALID_FOR_MS
            )
        )
