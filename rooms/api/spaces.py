"""Spaces and room previews: the space hierarchy and room summaries."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError
from rooms import hierarchy, room_summary
from rooms.api.common import check_room_id, resolve_room_id_or_alias
from rooms.models import Room


def _positive_int(request: Request, name: str, *, minimum: int, maximum: int, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be an integer") from None
    if value < minimum:
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be at least {minimum}")
    return min(value, maximum)


class HierarchyView(MatrixView):
    requires_auth = True

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v1/rooms/{roomId}/hierarchy"""
        check_room_id(room_id)
        suggested_only = request.query_params.get("suggested_only", "false")
        if suggested_only not in ("true", "false"):
            raise MatrixError("M_INVALID_PARAM", "'suggested_only' must be 'true' or 'false'")
        query = hierarchy.HierarchyQuery(
            room_id=room_id,
            user_id=request.user.user_id,
            suggested_only=suggested_only == "true",
            max_depth=_positive_int(
                request,
                "max_depth",
                minimum=0,
                maximum=hierarchy.MAX_DEPTH,
                default=hierarchy.DEFAULT_MAX_DEPTH,
            ),
            limit=_positive_int(
                request,
                "limit",
                minimum=1,
                maximum=hierarchy.MAX_LIMIT,
                default=hierarchy.DEFAULT_LIMIT,
            ),
            from_token=request.query_params.get("from"),
        )
        return ok(hierarchy.space_hierarchy(query))


class RoomSummaryView(MatrixView):
    # Servers MAY answer without an access token for rooms anyone may see.
    requires_auth = False

    def get(self, request: Request, room_id_or_alias: str) -> Response:
        """GET /_matrix/client/v1/room_summary/{roomIdOrAlias}"""
        room_id = resolve_room_id_or_alias(room_id_or_alias)
        room = Room.objects.filter(room_id=room_id).first()
        user_id = request.user.user_id if request.user is not None else None
        summary = room_summary.summarise(room) if room is not None else None
        # A room this server does not know, or one the user may not see: the same 404.
        if room is None or summary is None or not room_summary.may_preview(room, summary, user_id):
            raise MatrixError("M_NOT_FOUND", "Room not found")
        if user_id is not None:
            membership = room_summary.membership_of(room, user_id)
            if membership is not None:
                summary["membership"] = membership
        return ok(summary)
