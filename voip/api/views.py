"""The VoIP endpoint of the Client-Server API."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from voip.credentials import turn_server_for


class TurnServerView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/voip/turnServer"""
        # No TURN server configured: an empty object, as Synapse answers, so clients fall
        # back to their own STUN servers.
        return ok(turn_server_for(request.user.user_id))
