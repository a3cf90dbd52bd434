"""The homeserver's own 3PID validation: requestToken, the link and submit_url, and the
account's addresses (GET /account/3pid, POST /account/3pid/add).

Binding to identity servers (/account/3pid/bind, /unbind, /delete) lives in
accounts/api/threepid_binding.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors_threepids
from accounts.api.auth import client_ip
from accounts.api.devices import reauth_flows
from accounts.models import Medium
from accounts.services import threepid_binding, threepids, uia
from config.matrix_api import Body, MatrixView, ok
from config.ratelimit import check_ratelimit
from protocol.canonical_json import CANONICAL_JSON_MAX_INT, CANONICAL_JSON_MIN_INT
from protocol.errors import MatrixError


def parse_token_request(body: Body, medium: str) -> threepids.TokenRequest:
    """The fields of request_email_validation.yaml / request_msisdn_validation.yaml,
    checked and canonicalised; 400 on anything wrong, before anything is stored."""
    client_secret = body.req_str("client_secret")
    send_attempt = body.int("send_attempt", required=True)
    assert send_attempt is not None
    if not CANONICAL_JSON_MIN_INT <= send_attempt <= CANONICAL_JSON_MAX_INT:
        # Matrix integers (appendices, "Canonical JSON"); larger ones fit no column.
        raise MatrixError("M_INVALID_PARAM", "send_attempt is out of range")
    next_link = body.str("next_link") or ""
    # Ignored: this server validates addresses itself (request_email_validation.yaml).
    body.str("id_server")
    body.str("id_access_token")
    threepids.check_client_secret(client_secret)
    if medium == Medium.EMAIL:
        address = threepids.canonical_email(body.req_str("email"))
    else:
        address = threepids.canonical_msisdn(body.req_str("country"), body.req_str("phone_number"))
    return threepids.TokenRequest(medium, address, client_secret, send_attempt, next_link)


class RequestTokenView(MatrixView):
    """One view for the six requestToken endpoints, told its medium and purpose."""

    medium: str = Medium.EMAIL
    purpose: str = threepids.REGISTER

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/{register,account/password,account/3pid}/{medium}/requestToken

        ``medium`` is ``email`` or ``msisdn``."""
        token_request = parse_token_request(self.body(request), self.medium)
        check_ratelimit("threepid_request_ip", client_ip(request))
        check_ratelimit("threepid_request_address", f"{self.medium}:{token_request.address}")
        session = threepids.do_request_token(token_request, self.purpose)
        answer: dict[str, Any] = {"sid": session.sid}
        if self.medium == Medium.MSISDN:
            # The code comes by SMS; the client posts it to submit_url.
            answer["submit_url"] = threepids.submit_url()
        return ok(answer)


class SubmitTokenView(MatrixView):
    """The link in the mail (GET, a page for a person) and ``submit_url`` (POST, JSON, as
    the Identity Service API's POST /validate/{medium}/submitToken)."""

    def get(self, request: Request) -> HttpResponse:
        """GET /_trellis/client/threepid/submit_token"""
        params = request.query_params
        try:
            session = threepids.do_submit_token(
                params.get("sid", ""), params.get("client_secret", ""), params.get("token", "")
            )
        except MatrixError as error:
            expired = error.errcode == "M_SESSION_EXPIRED"
            return render(
                request._request,
                "threepid_submit.html",
                {
                    "server_name": settings.SERVER_NAME,
                    "outcome": "expired" if expired else "invalid",
                    "error": error.error,
                },
                status=400,
            )
        next_link = threepids.safe_next_link(session)
        if next_link is not None:
            return HttpResponseRedirect(next_link)
        return render(
            request._request,
            "threepid_submit.html",
            {
                "server_name": settings.SERVER_NAME,
                "outcome": "verified",
                "address": session.address,
            },
        )

    def post(self, request: Request) -> Response:
        """POST /_trellis/client/threepid/submit_token"""
        body = self.body(request)
        threepids.do_submit_token(
            body.req_str("sid"), body.req_str("client_secret"), body.req_str("token")
        )
        return ok({"success": True})


class ThreepidsView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/account/3pid"""
        return ok(
            {
                "threepids": [
                    {
                        "medium": threepid.medium,
                        "address": threepid.address,
                        "validated_at": threepid.validated_at_ms,
                        "added_at": threepid.added_at_ms,
                    }
                    for threepid in selectors_threepids.threepids_of(request.user)
                ]
            }
        )

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/3pid (deprecated): add an address an identity
        server validated, as /3pid/add does for one this server validated."""
        body = self.body(request)
        # threePidCreds: the name r0 clients used.
        legacy = "threePidCreds" in body and "three_pid_creds" not in body
        name = "threePidCreds" if legacy else "three_pid_creds"
        creds = Body(body.dict(name, required=True) or {})
        keys = ("id_server", "id_access_token", "sid", "client_secret")
        fields = {key: creds.req_str(key) for key in keys}
        threepid_binding.do_add_validated_elsewhere(request.user, **fields)
        return ok()


class AddThreepidView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/3pid/add"""
        body = self.body(request)
        client_secret = body.req_str("client_secret")
        sid = body.req_str("sid")
        threepids.check_client_secret(client_secret)
        session = uia.check_uia(
            body.data.get("auth"),
            uri="account/3pid/add",
            flows=reauth_flows(request.user),
            user=request.user,
        )
        try:
            validated = threepids.access_validated_session(sid, client_secret, threepids.ADD)
        except MatrixError as error:
            # A response, not a UIA stage: 403 as for POST /account/3pid's failed 3PID.
            raise MatrixError(error.errcode, error.error, status=403) from None
        threepids.do_add_from_session(request.user, validated)
        uia.finish_uia(session)
        return ok()
