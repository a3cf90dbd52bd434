"""Room upgrades and reporting content."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from rooms.api.common import check_room_id, send_context
from rooms.services import creation, reports, upgrade


class UpgradeRoomView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/upgrade"""
        body = self.body(request)
        check_room_id(room_id)
        new_version = creation.parse_room_version(body.req_str("new_version"))
        room = upgrade.do_upgrade_room(
            room_id, send_context(request), new_version, body.data.get("additional_creators")
        )
        return ok({"replacement_room": room.room_id})


class ReportEventView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id: str, event_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}"""
        body = self.body(request, allow_empty=True)
        check_room_id(room_id)
        reports.do_report_event(
            room_id, event_id, request.user.user_id, body.str("reason"), body.int("score")
        )
        return ok()


class ReportRoomView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/report"""
        body = self.body(request)
        check_room_id(room_id)
        reports.do_report_room(room_id, request.user.user_id, body.req_str("reason"))
        return ok()


class ReportUserView(MatrixView):
    requires_auth = True

    def post(self, request: Request, user_id: str) -> Response:
        """POST /_matrix/client/v3/users/{userId}/report"""
        body = self.body(request)
        reports.do_report_user(user_id, request.user.user_id, body.req_str("reason"))
        return ok()
