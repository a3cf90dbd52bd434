"""Room tags."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.account import require_self
from accounts.services import tags
from config.matrix_api import MatrixView, ok
from protocol.identifiers import require_room_id


class TagsView(MatrixView):
    requires_auth = True

    def get(self, request: Request, user_id: str, room_id: str) -> Response:
        """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"""
        user = require_self(request, user_id, "read tags")
        return ok({"tags": tags.get_tags(user, require_room_id(room_id))})


class TagView(MatrixView):
    requires_auth = True

    def put(self, request: Request, user_id: str, room_id: str, tag: str) -> Response:
        """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
        user = require_self(request, user_id, "set tags")
        body = self.body(request)
        tags.do_add_tag(user, require_room_id(room_id), tag, body.data)
        return ok()

    def delete(self, request: Request, user_id: str, room_id: str, tag: str) -> Response:
        """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
        user = require_self(request, user_id, "remove tags")
        tags.do_remove_tag(user, require_room_id(room_id), tag)
        return ok()
