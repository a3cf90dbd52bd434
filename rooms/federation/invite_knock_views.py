"""Served federation endpoints for invites and knocks (rooms.federation.invites and
rooms.federation.knocks); X-Matrix signed, like every view of rooms.federation.views."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import ok
from protocol.errors import MatrixError, missing_param
from rooms.federation import invites, knocks
from rooms.federation.views import FederationView


class InviteV2View(FederationView):
    def put(self, request: Request, room_id: str, event_id: str) -> Response:
        """PUT /_matrix/federation/v2/invite/{roomId}/{eventId}"""
        body = self.body(request)
        room_version = invites.supported_room_version(body.data.get("room_version"))
        event = body.dict("event", required=True)
        signed = invites.do_receive_invite(
            self.origin(request),
            room_id,
            event_id,
            event,
            room_version,
            body.data.get("invite_room_state"),
        )
        return ok({"event": signed})


class InviteV1View(FederationView):
    def put(self, request: Request, room_id: str, event_id: str) -> Response:
        """PUT /_matrix/federation/v1/invite/{roomId}/{eventId}"""
        body = self.body(request)
        # "Servers which receive a v1 invite request must assume that the room version
        # is either "1" or "2"": the two share their event format and signing.
        room_version = invites.supported_room_version("1")
        unsigned = body.data.get("unsigned")
        state = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
        signed = invites.do_receive_invite(
            self.origin(request), room_id, event_id, body.data, room_version, state
        )
        return ok([200, {"event": signed}])


class MakeKnockView(FederationView):
    def get(self, request: Request, room_id: str, user_id: str) -> Response:
        """GET /_matrix/federation/v1/make_knock/{roomId}/{userId}"""
        versions = request.query_params.getlist("ver")
        if not versions:
            raise missing_param("ver")
        return ok(knocks.make_knock(self.origin(request), room_id, user_id, versions))


class SendKnockView(FederationView):
    def put(self, request: Request, room_id: str, event_id: str) -> Response:
        """PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}"""
        body = self.body(request)
        if not body.data:
            raise MatrixError("M_BAD_JSON", "The body must be an event")
        return ok(knocks.do_receive_knock(self.origin(request), room_id, event_id, body.data))
