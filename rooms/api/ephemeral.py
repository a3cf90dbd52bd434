"""Typing notifications, receipts and read markers."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import Body, MatrixView, ok
from protocol.errors import MatrixError, forbidden
from protocol.identifiers import is_valid_event_id
from rooms import selectors
from rooms.api.common import check_room_id
from rooms.models import Event, Room
from rooms.services import receipts, typing


class TypingView(MatrixView):
    requires_auth = True

    def put(self, request: Request, room_id: str, user_id: str) -> Response:
        """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
        if user_id != request.user.user_id:
            raise forbidden("You can only set your own typing state")
        body = self.body(request)
        is_typing = body.data.get("typing")
        if not isinstance(is_typing, bool):
            raise MatrixError("M_BAD_JSON", "'typing' must be a boolean")
        timeout = body.int("timeout", default=typing.DEFAULT_TYPING_TIMEOUT_MS)
        assert timeout is not None
        if timeout < 0:
            raise MatrixError("M_INVALID_PARAM", "'timeout' must not be negative")
        room = selectors.access_joined_room(check_room_id(room_id), user_id)
        typing.do_set_typing(room, user_id, is_typing, timeout)
        return ok()


def _event(room: Room, event_id: str, user_id: str) -> Event:
    """The acknowledged event: in the room and visible to the user (404 otherwise)."""
    if not is_valid_event_id(event_id):
        raise MatrixError("M_INVALID_PARAM", "Invalid event ID")
    return selectors.get_event_for_user(room, event_id, user_id)


class ReceiptView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id: str, receipt_type: str, event_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"""
        body = self.body(request, allow_empty=True)
        if receipt_type not in (*receipts.RECEIPT_TYPES, receipts.FULLY_READ):
            raise MatrixError(
                "M_INVALID_PARAM",
                "Receipt type must be 'm.read', 'm.read.private' or 'm.fully_read'",
            )
        user = request.user
        room = selectors.access_joined_room(check_room_id(room_id), user.user_id)
        event = _event(room, event_id, user.user_id)
        thread_id = receipts.check_thread_id(receipt_type, body.data.get("thread_id"), event)
        if receipt_type == receipts.FULLY_READ:
            # "This endpoint effectively calls /read_markers internally".
            receipts.do_set_read_markers(user, room, fully_read=event)
        else:
            receipts.do_send_receipt(room, user.user_id, receipt_type, event, thread_id)
        return ok()


class ReadMarkersView(MatrixView):
    requires_auth = True

    def post(self, request: Request, room_id: str) -> Response:
        """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
        body: Body = self.body(request)
        user = request.user
        room = selectors.access_joined_room(check_room_id(room_id), user.user_id)
        markers = {
            key: _event(room, event_id, user.user_id)
            for key in (receipts.FULLY_READ, receipts.READ, receipts.READ_PRIVATE)
            if (event_id := body.str(key)) is not None
        }
        receipts.do_set_read_markers(
            user,
            room,
            fully_read=markers.get(receipts.FULLY_READ),
            read=markers.get(receipts.READ),
            read_private=markers.get(receipts.READ_PRIVATE),
        )
        return ok()
