"""Third-party invites over federation (rooms.services.third_party_invites): an identity
server's notice that an address was bound, and another server's request that this one
make an invite from a third-party invite in a room it is in."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError, bad_json
from rooms.federation.access import access_room
from rooms.federation.views import FederationView
from rooms.services import third_party_invites


class OnBindView(MatrixView):
    # Called by identity servers, which are not homeservers: no X-Matrix. What it brings
    # is trusted only as far as the identity server's signatures verify with the keys of
    # the room's m.room.third_party_invite.
    authentication_classes: list[type] = []

    def put(self, request: Request) -> Response:
        """PUT /_matrix/federation/v1/3pid/onbind"""
        body = self.body(request)
        for key in ("medium", "address", "mxid"):
            body.req_str(key)
        third_party_invites.do_receive_onbind(body.data)
        return ok()

    # Sydent and sytest's identity server POST (as Synapse accepts it); the spec says PUT.
    post = put


class ExchangeThirdPartyInviteView(FederationView):
    def put(self, request: Request, room_id: str) -> Response:
        """PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}"""
        body = self.body(request)
        access_room(room_id, self.origin(request))
        if body.req_str("room_id") != room_id:
            raise MatrixError("M_INVALID_PARAM", "The event's room_id is not the path's")
        if body.req_str("type") != "m.room.member":
            raise MatrixError("M_INVALID_PARAM", "The event must be an m.room.member")
        content = body.dict("content", required=True) or {}
        third_party_invite = content.get("third_party_invite")
        if content.get("membership") != "invite" or not isinstance(third_party_invite, dict):
            raise bad_json("The content must be an invite with a 'third_party_invite'")
        third_party_invites.do_make_third_party_invite(
            room_id,
            body.req_str("sender"),
            body.req_str("state_key"),
            third_party_invite.get("signed"),
        )
        return ok()
