"""What this server tells other servers of its users' keys (Server-Server API, "Device
Management" and "End-to-End Encryption"). X-Matrix signed, as every federation endpoint
(rooms.federation.views.FederationView). Only local users are answered: others are left
out of /user/keys/query and /user/keys/claim, and /user/devices refuses them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import ok
from e2ee import selectors
from e2ee.models import CrossSigningKey
from e2ee.services import keys
from protocol.errors import MatrixError
from protocol.identifiers import parse_user_id
from rooms.federation.views import FederationView


class UserKeysQueryView(FederationView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/federation/v1/user/keys/query"""
        wanted = keys.check_query(self.body(request).dict("device_keys", required=True))
        answer = selectors.query_local_keys(self.origin(request), wanted)
        # Nobody's user-signing key goes to another server.
        answer.pop("user_signing_keys", None)
        return ok(answer)


class UserKeysClaimView(FederationView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/federation/v1/user/keys/claim"""
        claims = keys.check_claims(self.body(request).dict("one_time_keys", required=True))
        claimed = keys.do_claim_local_keys(claims)
        return ok({"one_time_keys": claimed.one_time_keys})


class UserDevicesView(FederationView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_matrix/federation/v1/user/devices/{userId}"""
        try:
            domain = parse_user_id(user_id).domain
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "Not a user ID") from None
        if domain != settings.SERVER_NAME:
            raise MatrixError("M_INVALID_PARAM", "The user is not a user of this server")
        # The head first: a change made while the snapshot is read comes with a newer
        # stream_id, so the asking server never believes it has seen it.
        stream_id = selectors.device_list_stream_id(user_id)
        devices = []
        for device in selectors.local_devices(user_id).values():
            entry: dict[str, Any] = {"device_id": device.device_id}
            if device.keys is not None:
                entry["keys"] = device.keys
            if device.display_name is not None:
                entry["device_display_name"] = device.display_name
            devices.append(entry)
        answer: dict[str, Any] = {"user_id": user_id, "stream_id": stream_id, "devices": devices}
        cross_signing = selectors.published_cross_signing_keys(user_id)
        if CrossSigningKey.MASTER in cross_signing:
            answer["master_key"] = cross_signing[CrossSigningKey.MASTER]
        if CrossSigningKey.SELF_SIGNING in cross_signing:
            answer["self_signing_key"] = cross_signing[CrossSigningKey.SELF_SIGNING]
        return ok(answer)
