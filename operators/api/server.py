"""/_synapse/admin endpoints: server notices and federation destinations (Synapse's
shapes)."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, re_path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.auth import client_ip
from config.matrix_api import ok
from operators import selectors_server as server_reads
from operators.api import query
from operators.api.base import AdminView
from operators.services import server as server_actions
from protocol.errors import bad_json

V1 = r"^_synapse/admin/v1/"
DESTINATION = r"federation/destinations/(?P<destination>[^/]+)"


class SendServerNoticeView(AdminView):
    def post(self, request: Request, txn_id: str | None = None) -> Response:
        """POST /_synapse/admin/v1/send_server_notice"""
        body = self.body(request)
        user_id = body.req_str("user_id")
        content = body.dict("content", required=True)
        assert content is not None
        event_type = body.str("type") or "m.room.message"
        state_key = body.str("state_key")
        event = server_actions.send_server_notice(
            user_id,
            content,
            actor=request.user.user_id,
            ip=client_ip(request),
            event_type=event_type,
            state_key=state_key,
            txn_id=txn_id,
        )
        return ok({"event_id": event.event_id})

    def put(self, request: Request, txn_id: str | None = None) -> Response:
        """PUT /_synapse/admin/v1/send_server_notice/{txnId}"""
        if txn_id is None:
            raise bad_json("A transaction ID is needed")
        return self.post(request, txn_id)


class DestinationsView(AdminView):
    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/federation/destinations"""
        start, limit = query.offset_and_limit(request)
        order_by = query.choice(
            request, "order_by", server_reads.DESTINATION_ORDERS, "destination"
        )
        items, total = server_reads.destinations(
            start=start,
            limit=limit,
            order_by=order_by,
            backwards=query.backwards(request),
            search=request.query_params.get("destination"),
        )
        response: dict[str, Any] = {"destinations": items, "total": total}
        if start + len(items) < total:
            response["next_token"] = str(start + len(items))
        return ok(response)


class DestinationView(AdminView):
    def get(self, request: Request, destination: str) -> Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}"""
        return ok(server_reads.destination_json(server_reads.access_destination(destination)))


class DestinationRoomsView(AdminView):
    def get(self, request: Request, destination: str) -> Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}/rooms"""
        start, limit = query.offset_and_limit(request)
        rooms, total = server_reads.destination_rooms(
            server_reads.access_destination(destination),
            start=start,
            limit=limit,
            backwards=query.backwards(request),
        )
        response: dict[str, Any] = {"rooms": rooms, "total": total}
        if start + len(rooms) < total:
            response["next_token"] = str(start + len(rooms))
        return ok(response)


class ResetConnectionView(AdminView):
    def post(self, request: Request, destination: str) -> Response:
        """POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection"""
        server_actions.reset_destination(
            destination, actor=request.user.user_id, ip=client_ip(request)
        )
        return ok({})


urlpatterns: list[URLPattern] = [
    re_path(V1 + r"send_server_notice$", SendServerNoticeView.as_view()),
    re_path(V1 + r"send_server_notice/(?P<txn_id>[^/]+)$", SendServerNoticeView.as_view()),
    re_path(V1 + r"federation/destinations$", DestinationsView.as_view()),
    re_path(V1 + DESTINATION + r"$", DestinationView.as_view()),
    re_path(V1 + DESTINATION + r"/rooms$", DestinationRoomsView.as_view()),
    re_path(V1 + DESTINATION + r"/reset_connection$", ResetConnectionView.as_view()),
]
