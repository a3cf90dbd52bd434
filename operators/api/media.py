"""/_synapse/admin endpoints: media (Synapse's shapes)."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, re_path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.auth import client_ip
from accounts.selectors import local_user
from config.matrix_api import ok
from operators import selectors_media as media_reads
from operators import selectors_rooms as room_reads
from operators.api import query
from operators.api.base import AdminView
from operators.services import media as media_actions
from protocol.errors import MatrixError, invalid_param

V1 = r"^_synapse/admin/v1/"
MEDIA = r"(?P<server_name>[^/]+)/(?P<media_id>[^/]+)"


class QuarantineMediaView(AdminView):
    def post(self, request: Request, server_name: str, media_id: str) -> Response:
        """POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}"""
        media_actions.quarantine_media(
            server_name, media_id, actor=request.user.user_id, ip=client_ip(request)
        )
        return ok({})


class UnquarantineMediaView(AdminView):
    def post(self, request: Request, server_name: str, media_id: str) -> Response:
        """POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}"""
        media_actions.unquarantine_media(
            server_name, media_id, actor=request.user.user_id, ip=client_ip(request)
        )
        return ok({})


class QuarantineRoomMediaView(AdminView):
    def post(self, request: Request, room_id: str) -> Response:
        """POST /_synapse/admin/v1/room/{roomId}/media/quarantine"""
        room_reads.access_room(room_id)
        count = media_actions.quarantine_room_media(
            room_id, actor=request.user.user_id, ip=client_ip(request)
        )
        return ok({"num_quarantined": count})


class QuarantineUserMediaView(AdminView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/user/{userId}/media/quarantine"""
        if local_user(user_id) is None:
            raise MatrixError("M_NOT_FOUND", "Unknown local user")
        count = media_actions.quarantine_user_media(
            user_id, actor=request.user.user_id, ip=client_ip(request)
        )
        return ok({"num_quarantined": count})


class ProtectMediaView(AdminView):
    def post(self, request: Request, media_id: str) -> Response:
        """POST /_synapse/admin/v1/media/protect/{mediaId}"""
        media_actions.protect_media(media_id, actor=request.user.user_id, ip=client_ip(request))
        return ok({})


class UnprotectMediaView(AdminView):
    def post(self, request: Request, media_id: str) -> Response:
        """POST /_synapse/admin/v1/media/unprotect/{mediaId}"""
        media_actions.unprotect_media(media_id, actor=request.user.user_id, ip=client_ip(request))
        return ok({})


class MediaView(AdminView):
    def get(self, request: Request, server_name: str, media_id: str) -> Response:
        """GET /_synapse/admin/v1/media/{serverName}/{mediaId}"""
        return ok({"media_info": media_reads.media_info(server_name, media_id)})

    def delete(self, request: Request, server_name: str, media_id: str) -> Response:
        """DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}"""
        deleted = media_actions.delete_media(
            server_name, media_id, actor=request.user.user_id, ip=client_ip(request)
        )
        return ok({"deleted_media": deleted, "total": len(deleted)})


class DeleteOldMediaView(AdminView):
    def post(self, request: Request) -> Response:
        """POST /_synapse/admin/v1/media/delete?before_ts=..."""
        before_ts = query.non_negative_int(request, "before_ts", None)
        if before_ts is None:
            raise MatrixError("M_MISSING_PARAM", "Missing integer query parameter 'before_ts'")
        size_gt = query.non_negative_int(request, "size_gt", 0)
        keep_profiles = query.optional_bool(request, "keep_profiles")
        deleted = media_actions.delete_old_media(
            before_ts,
            size_gt=size_gt or 0,
            keep_profiles=True if keep_profiles is None else keep_profiles,
            actor=request.user.user_id,
            ip=client_ip(request),
        )
        return ok({"deleted_media": deleted, "total": len(deleted)})


class RoomMediaView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/room/{roomId}/media"""
        room_reads.access_room(room_id)
        return ok(media_reads.room_media(room_id))


class UsersMediaStatisticsView(AdminView):
    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/statistics/users/media"""
        start, limit = query.offset_and_limit(request)
        order_by = query.choice(request, "order_by", media_reads.USER_MEDIA_ORDERS, "user_id")
        from_ts = query.non_negative_int(request, "from_ts", None)
        until_ts = query.non_negative_int(request, "until_ts", None)
        if from_ts is not None and until_ts is not None and until_ts <= from_ts:
            raise invalid_param("Query parameter until_ts must be greater than from_ts.")
        search_term = request.query_params.get("search_term")
        if search_term == "":
            raise invalid_param("Query parameter search_term cannot be an empty string.")
        users, total = media_reads.users_media(
            start=start,
            limit=limit,
            order_by=order_by,
            backwards=query.backwards(request),
            from_ts=from_ts,
            until_ts=until_ts,
            search_term=search_term,
        )
        response: dict[str, Any] = {"users": users, "total": total}
        if start + len(users) < total:
            response["next_token"] = start + len(users)
        return ok(response)


urlpatterns: list[URLPattern] = [
    re_path(V1 + r"media/quarantine/" + MEDIA + "$", QuarantineMediaView.as_view()),
    re_path(V1 + r"media/unquarantine/" + MEDIA + "$", UnquarantineMediaView.as_view()),
    re_path(V1 + r"media/protect/(?P<media_id>[^/]+)$", ProtectMediaView.as_view()),
    re_path(V1 + r"media/unprotect/(?P<media_id>[^/]+)$", UnprotectMediaView.as_view()),
    re_path(V1 + r"media/delete$", DeleteOldMediaView.as_view()),
    re_path(V1 + r"media/" + MEDIA + "$", MediaView.as_view()),
    re_path(V1 + r"room/(?P<room_id>[^/]+)/media/quarantine$", QuarantineRoomMediaView.as_view()),
    re_path(V1 + r"room/(?P<room_id>[^/]+)/media$", RoomMediaView.as_view()),
    re_path(V1 + r"user/(?P<user_id>[^/]+)/media/quarantine$", QuarantineUserMediaView.as_view()),
    re_path(V1 + r"statistics/users/media$", UsersMediaStatisticsView.as_view()),
]
