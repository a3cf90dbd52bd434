"""Presence."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from presence import selectors, services
from protocol.errors import forbidden, invalid_param
from protocol.identifiers import is_valid_user_id


class PresenceStatusView(MatrixView):
    requires_auth = True

    def get(self, request: Request, user_id: str) -> Response:
        """GET /_matrix/client/v3/presence/{userId}/status"""
        if not is_valid_user_id(user_id):
            raise invalid_param("Invalid user ID")
        # presence.yaml: 403 for a user whose presence the requester may not see; here,
        # anyone who shares no joined room with them.
        if not selectors.shares_a_room(request.user.user_id, user_id):
            raise forbidden("You are not allowed to see their presence")
        return ok(selectors.get_presence(user_id))

    def put(self, request: Request, user_id: str) -> Response:
        """PUT /_matrix/client/v3/presence/{userId}/status"""
        if request.user.user_id != user_id:
            raise forbidden("You cannot set the presence of another user")
        body = self.body(request)
        services.do_set_presence(user_id, body.req_str("presence"), body.str("status_msg"))
        return ok()
