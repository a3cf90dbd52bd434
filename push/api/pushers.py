"""Pushers (Client-Server API, "Push Notifications": GET /pushers, POST /pushers/set)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from push import selectors
from push.services import pushers


class PushersView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/pushers"""
        return ok({"pushers": selectors.pushers_of(request.user.user_id)})


class SetPusherView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/pushers/set"""
        checked = pushers.check_pusher_request(self.body(request))
        pushers.do_set_pusher(request.user.user_id, request.auth.device_id_str, checked)
        return ok()
