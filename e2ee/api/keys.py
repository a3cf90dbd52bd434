"""Key management and cross-signing (Client-Server API, "End-to-End Encryption")."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.devices import reauth_flows
from accounts.services import uia
from config.matrix_api import MatrixView, ok
from e2ee.services import cross_signing, keys, remote_keys


class KeysUploadView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"POST"})

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/keys/upload"""
        body = self.body(request)
        counts = keys.do_upload_keys(
            request.auth.device,
            device_keys=body.dict("device_keys"),
            one_time_keys=body.dict("one_time_keys"),
            fallback_keys=body.dict("fallback_keys"),
        )
        return ok({"one_time_key_counts": counts})


class KeysQueryView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"POST"})

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/keys/query"""
        body = self.body(request)
        timeout = body.int("timeout")
        wanted = keys.check_query(body.dict("device_keys", required=True))
        return ok(remote_keys.do_query_keys(request.user.user_id, wanted, timeout))


class KeysClaimView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"POST"})

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/keys/claim"""
        body = self.body(request)
        timeout = body.int("timeout")
        claims = keys.check_claims(body.dict("one_time_keys", required=True))
        claimed = remote_keys.do_claim_keys(claims, timeout)
        return ok({"one_time_keys": claimed.one_time_keys, "failures": claimed.failures})


class DeviceSigningUploadView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/keys/device_signing/upload"""
        body = self.body(request)
        given: dict[str, Any] = {
            usage: body.dict(name)
            for usage, name in cross_signing.FIELDS.items()
            if body.dict(name) is not None
        }
        session = None
        if cross_signing.requires_uia(request.user, given):
            session = uia.check_uia(
                body.data.get("auth"),
                uri="keys/device_signing/upload",
                flows=reauth_flows(request.user),
                user=request.user,
            )
        cross_signing.do_upload_cross_signing_keys(request.user, given)
        if session is not None:
            uia.finish_uia(session)
        return ok()


class SignaturesUploadView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/keys/signatures/upload"""
        signed = cross_signing.check_signed_objects(self.body(request).data)
        failures = cross_signing.do_upload_signatures(request.user, signed)
        return ok({"failures": failures})
