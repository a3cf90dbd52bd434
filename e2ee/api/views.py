"""Send-to-device messaging."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from e2ee.services import to_device


class SendToDeviceView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"PUT"})

    def put(self, request: Request, event_type: str, txn_id: str) -> Response:
        """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
        body = self.body(request)
        messages = body.dict("messages", required=True)
        assert messages is not None
        to_device.do_send_to_device(request.auth.device, event_type, txn_id, messages)
        return ok()
