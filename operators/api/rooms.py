"""/_synapse/admin endpoints: rooms, room deletion, event reports (Synapse's shapes)."""

from __future__ import annotations

import time
from typing import Any

from django.urls import URLPattern, re_path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.auth import client_ip
from config.matrix_api import ok
from operators import selectors_rooms as room_reads
from operators.api import query
from operators.api.base import AdminView
from operators.services import rooms as room_actions
from protocol.errors import MatrixError, bad_json, invalid_param
from rooms import history, selectors
from rooms.api.common import resolve_room_id_or_alias
from rooms.api.rooms import parse_filter_param, parse_limit
from rooms.models import Event, ForwardExtremity
from rooms.serialize import client_events
from rooms.services import backfill

V1 = r"^_synapse/admin/v1/"
V2 = r"^_synapse/admin/v2/"
ROOM = r"rooms/(?P<room_id>[^/]+)"


def _search_term(request: Request) -> str | None:
    term = request.query_params.get("search_term")
    if term == "":
        raise invalid_param("search_term cannot be an empty string")
    return term


class RoomListView(AdminView):
    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/rooms"""
        start, limit = query.offset_and_limit(request)
        order_by = query.choice(request, "order_by", list(room_reads.ROOM_ORDERS), "name")
        rooms, total = room_reads.list_rooms(
            start=start,
            limit=limit,
            order_by=order_by,
            backwards=query.backwards(request),
            search_term=_search_term(request),
            public_rooms=query.optional_bool(request, "public_rooms"),
            empty_rooms=query.optional_bool(request, "empty_rooms"),
        )
        response: dict[str, Any] = {"rooms": rooms, "offset": start, "total_rooms": total}
        if start + limit < total:
            response["next_batch"] = start + limit
        if start > 0:
            response["prev_batch"] = max(start - limit, 0)
        return ok(response)


class RoomDetailsView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/rooms/{roomId}"""
        return ok(room_reads.room_details(room_reads.access_room(room_id)))


class RoomMembersView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/members"""
        room = room_reads.access_room(room_id)
        members = sorted(selectors.joined_members(room))
        return ok({"members": members, "total": len(members)})


def _with_legacy_fields(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Synapse's admin API serialises events with the legacy top-level ``user_id`` (the
    sender) and ``age`` beside the spec's fields; admin tools read them."""
    now = int(time.time() * 1000)
    for event in events:
        event.setdefault("user_id", event["sender"])
        age = event.get("unsigned", {}).get("age")
        event.setdefault("age", age if isinstance(age, int) else now - event["origin_server_ts"])
    return events


class RoomStateView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/state"""
        room = room_reads.access_room(room_id)
        rows = selectors.state_events(room.current_state_group_id)
        event_type = request.query_params.get("type")
        if event_type is not None:
            rows = [row for row in rows if row.type == event_type]
        rows.sort(key=lambda row: (row.type, row.state_key or ""))
        return ok({"state": _with_legacy_fields(client_events(rows))})


class RoomMessagesView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/messages: the client API's /messages,
        every event whatever the history visibility."""
        room = room_reads.access_room(room_id)
        direction = "b" if query.backwards(request) else "f"
        room_filter = parse_filter_param(request)
        limit = parse_limit(request, 10)
        if room_filter and isinstance(room_filter.get("limit"), int):
            limit = min(limit, room_filter["limit"])
        reader = history.Reader(room, request.user.user_id, True, frozenset(), admin=True)
        page = backfill.paginate(
            reader,
            from_token=request.query_params.get("from"),
            to_token=request.query_params.get("to"),
            direction=direction,
            limit=limit,
            room_filter=room_filter,
        )
        response: dict[str, Any] = {
            "chunk": _with_legacy_fields(client_events(page.chunk)),
            "start": page.start,
        }
        if page.end is not None:
            response["end"] = page.end
        if page.state:
            response["state"] = _with_legacy_fields(client_events(page.state))
        return ok(response)


class RoomBlockView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/rooms/{roomId}/block"""
        return ok(room_reads.block_status(room_id))

    def put(self, request: Request, room_id: str) -> Response:
        """PUT /_synapse/admin/v1/rooms/{roomId}/block"""
        block = self.body(request).data.get("block")
        if not isinstance(block, bool):
            raise bad_json("Param 'block' must be a boolean")
        room_actions.block_room(room_id, block, actor=request.user.user_id, ip=client_ip(request))
        return ok({"block": block})


class ForwardExtremitiesView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v1/rooms/{roomIdOrAlias}/forward_extremities"""
        room = room_reads.access_room(resolve_room_id_or_alias(room_id))
        event_ids = ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True)
        rows = Event.objects.filter(event_id__in=list(event_ids)).order_by("depth", "event_id")
        results = [
            {
                "event_id": row.event_id,
                "state_group": row.state_group_id,
                "depth": row.depth,
                # When the event arrived is not stored here.
                "received_ts": None,
            }
            for row in rows
        ]
        return ok({"count": len(results), "results": results})


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise bad_json(f"Param '{name}' must be a boolean, if given")
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_json(f"Param '{name}' must be a string, if given")
    return value


class DeleteRoomView(AdminView):
    def delete(self, request: Request, room_id: str) -> Response:
        """DELETE /_synapse/admin/v2/rooms/{roomId}"""
        body = self.body(request).data
        job = room_actions.delete_room(
            room_id,
            actor=request.user.user_id,
            ip=client_ip(request),
            new_room_user_id=_optional_str(body, "new_room_user_id"),
            room_name=_optional_str(body, "room_name"),
            message=_optional_str(body, "message"),
            block=_flag(body, "block", False),
            purge=_flag(body, "purge", True),
            force_purge=_flag(body, "force_purge", False),
        )
        return ok({"delete_id": job.job_id})


class DeleteStatusByRoomView(AdminView):
    def get(self, request: Request, room_id: str) -> Response:
        """GET /_synapse/admin/v2/rooms/{roomId}/delete_status"""
        if not room_id.startswith("!"):
            raise invalid_param(f"{room_id!r} is not a legal room ID")
        found = room_reads.deletions_of_room(room_id)
        if not found:
            raise MatrixError("M_NOT_FOUND", f"No delete task for room_id '{room_id}' found")
        return ok({"results": [room_reads.deletion_status(job) for job in found]})


class DeleteStatusView(AdminView):
    def get(self, request: Request, delete_id: str) -> Response:
        """GET /_synapse/admin/v2/rooms/delete_status/{deleteId}"""
        return ok(room_reads.deletion_status(room_reads.deletion(delete_id)))


class MakeRoomAdminView(AdminView):
    def post(self, request: Request, room_id: str) -> Response:
        """POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin"""
        body = self.body(request, allow_empty=True).data
        user_id = body.get("user_id", request.user.user_id)
        if not isinstance(user_id, str):
            raise bad_json("Param 'user_id' must be a string")
        room_actions.make_room_admin(
            resolve_room_id_or_alias(room_id),
            user_id,
            actor=request.user.user_id,
            ip=client_ip(request),
        )
        return ok({})


class EventReportsView(AdminView):
    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/event_reports"""
        start, limit = query.offset_and_limit(request)
        reports, total = room_reads.event_reports(
            start=start,
            limit=limit,
            backwards=query.backwards(request, default="b"),
            room_id=request.query_params.get("room_id"),
            user_id=request.query_params.get("user_id"),
            event_sender_user_id=request.query_params.get("event_sender_user_id"),
        )
        response: dict[str, Any] = {"event_reports": reports, "total": total}
        if start + len(reports) < total:
            response["next_token"] = start + len(reports)
        return ok(response)


class EventReportView(AdminView):
    def get(self, request: Request, report_id: str) -> Response:
        """GET /_synapse/admin/v1/event_reports/{reportId}"""
        return ok(room_reads.event_report(_report(report_id)))

    def delete(self, request: Request, report_id: str) -> Response:
        """DELETE /_synapse/admin/v1/event_reports/{reportId}"""
        report = _report(report_id)
        room_actions.delete_report(report.pk, actor=request.user.user_id, ip=client_ip(request))
        return ok({})


def _report(report_id: str) -> Any:
    if not report_id.isdigit():
        raise invalid_param(
            "The report_id parameter must be a string representing a positive integer."
        )
    return room_reads.access_report(report_id)


urlpatterns: list[URLPattern] = [
    re_path(V1 + r"rooms$", RoomListView.as_view()),
    re_path(V1 + ROOM + r"$", RoomDetailsView.as_view()),
    re_path(V1 + ROOM + r"/members$", RoomMembersView.as_view()),
    re_path(V1 + ROOM + r"/state$", RoomStateView.as_view()),
    re_path(V1 + ROOM + r"/messages$", RoomMessagesView.as_view()),
    re_path(V1 + ROOM + r"/block$", RoomBlockView.as_view()),
    re_path(V1 + ROOM + r"/forward_extremities$", ForwardExtremitiesView.as_view()),
    re_path(V1 + ROOM + r"/make_room_admin$", MakeRoomAdminView.as_view()),
    re_path(V2 + r"rooms/delete_status/(?P<delete_id>[^/]+)$", DeleteStatusView.as_view()),
    re_path(V2 + ROOM + r"/delete_status$", DeleteStatusByRoomView.as_view()),
    re_path(V2 + ROOM + r"$", DeleteRoomView.as_view()),
    re_path(V1 + r"event_reports$", EventReportsView.as_view()),
    re_path(V1 + r"event_reports/(?P<report_id>[^/]+)$", EventReportView.as_view()),
]
