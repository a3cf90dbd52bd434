"""The Identity Service API v2 (content/identity-service-api.md), under /_matrix/identity/."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import Body, ok
from config.views import SUPPORTED_SPEC_VERSIONS
from federation.auth import authenticate_request
from identity.api.base import IdentityView
from identity.authentication import request_token
from identity.services import accounts, associations, invites, lookup, validation
from identity.services.accounts import unauthorized
from protocol.errors import MatrixError, missing_param
from protocol.identifiers import parse_user_id
from protocol.threepids import EMAIL, canonical_email
from protocol.x_matrix import is_x_matrix


class VersionsView(IdentityView):
    requires_account = False

    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/versions"""
        return ok({"versions": SUPPORTED_SPEC_VERSIONS})


class StatusView(IdentityView):
    requires_account = False

    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2"""
        return ok({})


# --- authentication and terms -------------------------------------------------------------


class RegisterView(IdentityView):
    requires_account = False

    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/account/register"""
        body = self.body(request)
        # The body is what /openid/request_token answered; all four fields are required.
        body.req_str("token_type")
        body.int("expires_in", required=True)
        token = accounts.do_register(
            body.req_str("access_token"), body.req_str("matrix_server_name")
        )
        return ok({"token": token})


class AccountView(IdentityView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2/account"""
        return ok({"user_id": self.account(request).user_id})


class LogoutView(IdentityView):
    # The spec answers an unknown token here with 401 M_UNKNOWN_TOKEN, so the view looks
    # the token up itself.
    authentication_classes = []
    requires_account = False

    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/account/logout"""
        token = request_token(request)
        if token is None:
            raise unauthorized("Missing access token")
        account = accounts.account_for_token(token)
        if account is None:
            raise MatrixError("M_UNKNOWN_TOKEN", "Unrecognised access token", status=401)
        accounts.do_logout(account)
        return ok({})


class TermsView(IdentityView):
    requires_terms = False

    def get_authenticators(self) -> list[BaseAuthentication]:
        # GET /terms needs no authentication (and ignores a token it is sent). Called
        # while DRF wraps the request: self.request is still Django's.
        if self.request.method == "GET":
            return []
        return list(super().get_authenticators())

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        self.requires_account = request.method != "GET"
        super().initial(request, *args, **kwargs)

    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2/terms"""
        return ok({"policies": accounts.policies()})

    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/terms"""
        urls = self.body(request).list("user_accepts", required=True) or []
        if not all(isinstance(url, str) for url in urls):
            raise MatrixError("M_INVALID_PARAM", "user_accepts must be a list of URLs")
        accounts.do_accept_terms(self.account(request).user_id, urls)
        return ok({})


# --- keys ---------------------------------------------------------------------------------


class PubkeyView(IdentityView):
    requires_account = False

    def get(self, request: Request, key_id: str) -> Response:
        """GET /_matrix/identity/v2/pubkey/{keyId}"""
        return ok({"public_key": invites.public_key(key_id)})


class PubkeyIsValidView(IdentityView):
    requires_account = False

    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2/pubkey/isvalid"""
        key = self.query_str(request, "public_key", required=True) or ""
        return ok({"valid": invites.is_valid_long_term_key(key)})


class EphemeralPubkeyIsValidView(IdentityView):
    requires_account = False

    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2/pubkey/ephemeral/isvalid"""
        key = self.query_str(request, "public_key", required=True) or ""
        return ok({"valid": invites.is_valid_ephemeral_key(key)})


# --- validation -----------------------------------------------------------------------------


def _send_attempt(body: Body) -> int:
    send_attempt = body.int("send_attempt", required=True)
    assert send_attempt is not None
    return send_attempt


class EmailRequestTokenView(IdentityView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/validate/email/requestToken"""
        body = self.body(request)
        sid = validation.do_request_email_token(
            body.req_str("client_secret"),
            body.req_str("email"),
            _send_attempt(body),
            body.str("next_link") or "",
            self.ip(request),
        )
        return ok({"sid": sid})


class MsisdnRequestTokenView(IdentityView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/validate/msisdn/requestToken"""
        body = self.body(request)
        sid = validation.do_request_msisdn_token(
            body.req_str("client_secret"),
            body.req_str("country"),
            body.req_str("phone_number"),
            _send_attempt(body),
            body.str("next_link") or "",
            self.ip(request),
        )
        return ok({"sid": sid})


def _safe_next_link(next_link: str) -> str | None:
    """Where to send the browser after validating: http(s) URLs only (no javascript:)."""
    parts = urlsplit(next_link)
    return next_link if parts.scheme in ("http", "https") and parts.netloc else None


class SubmitTokenView(IdentityView):
    """POST and GET /_matrix/identity/v2/validate/{email,msisdn}/submitToken.

    GET is the link in the mail, opened in a browser that has no identity access token:
    knowing the sid, client secret and token is the proof. It answers with a page, or a
    redirect to the session's ``next_link``.
    """

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        self.requires_account = request.method != "GET"
        super().initial(request, *args, **kwargs)

    def post(self, request: Request, medium: str) -> Response:
        """POST /_matrix/identity/v2/validate/{medium}/submitToken"""
        body = self.body(request)
        validation.do_submit_token(
            medium, body.req_str("sid"), body.req_str("client_secret"), body.req_str("token")
        )
        return ok({"success": True})

    def get(self, request: Request, medium: str) -> HttpResponse:
        """GET /_matrix/identity/v2/validate/{medium}/submitToken"""
        params = {}
        for name in ("sid", "client_secret", "token"):
            value = request.query_params.get(name)
            if value is None:
                raise missing_param(name)
            params[name] = value
        session = validation.do_submit_token(medium, **params)
        target = _safe_next_link(session.next_link)
        if target is not None:
            return HttpResponseRedirect(target)
        return render(
            request._request,
            "identity/submit_token.html",
            {"medium": session.medium, "address": session.address},
        )


class GetValidated3pidView(IdentityView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2/3pid/getValidated3pid"""
        session = validation.validated_session(
            self.query_str(request, "sid", required=True) or "",
            self.query_str(request, "client_secret", required=True) or "",
        )
        return ok(
            {
                "medium": session.medium,
                "address": session.address,
                "validated_at": session.validated_at_ms,
            }
        )


# --- associations ---------------------------------------------------------------------------


class BindView(IdentityView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/3pid/bind"""
        body = self.body(request)
        return ok(
            associations.do_bind(
                body.req_str("sid"),
                body.req_str("client_secret"),
                body.req_str("mxid"),
                account_user_id=self.account(request).user_id,
            )
        )


class UnbindView(IdentityView):
    """POST /_matrix/identity/v2/3pid/unbind, authorised either by an X-Matrix signature of
    the homeserver of ``mxid`` or by a validated session (``sid``, ``client_secret``) of
    the same 3PID with an identity access token."""

    # Authentication depends on the header: done in post().
    authentication_classes = []
    requires_account = False

    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/3pid/unbind"""
        body = self.body(request)
        mxid = body.req_str("mxid")
        threepid = Body(body.dict("threepid", required=True) or {})
        medium = threepid.req_str("medium")
        address = threepid.req_str("address")
        associations.check_mxid(mxid)
        if medium == EMAIL:
            address = canonical_email(address) or address
        if is_x_matrix(request.headers.get("Authorization", "")):
            origin = authenticate_request(request._request).origin
            if parse_user_id(mxid).domain != origin:
                raise MatrixError("M_FORBIDDEN", f"{origin} does not control {mxid}")
        else:
            account = self._account(request)
            accounts.check_terms_signed(account.user_id)
            if "sid" not in body or "client_secret" not in body:
                raise MatrixError(
                    "M_FORBIDDEN",
                    "Unbinding needs a homeserver's signature or sid and client_secret",
                )
            associations.check_unbind_by_session(
                body.req_str("sid"), body.req_str("client_secret"), medium, address
            )
        associations.do_unbind(medium, address, mxid)
        return ok({})

    def _account(self, request: Request) -> accounts.IdentityToken:
        token = request_token(request)
        account = accounts.account_for_token(token) if token else None
        if account is None:
            raise unauthorized("Missing or unrecognised access token")
        return account


# --- lookup ---------------------------------------------------------------------------------


class HashDetailsView(IdentityView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/identity/v2/hash_details"""
        return ok(lookup.hash_details())


class LookupView(IdentityView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/lookup"""
        body = self.body(request)
        mappings = lookup.do_lookup(
            body.req_str("algorithm"),
            body.req_str("pepper"),
            body.list("addresses", required=True) or [],
        )
        return ok({"mappings": mappings})


# --- invitations ----------------------------------------------------------------------------


def _request_host(request: Request) -> str:
    """The host[:port] the request was addressed to; "" for a Host header that is none."""
    try:
        return str(request._request.get_host())
    except DisallowedHost:
        return ""


class StoreInviteView(IdentityView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/store-invite"""
        body = self.body(request)
        details = {
            key: value for key in invites.INVITE_DETAILS if isinstance(value := body.str(key), str)
        }
        return ok(
            invites.do_store_invite(
                account_user_id=self.account(request).user_id,
                medium=body.req_str("medium"),
                address=body.req_str("address"),
                room_id=body.req_str("room_id"),
                sender=body.req_str("sender"),
                details=details,
                request_host=_request_host(request),
            )
        )


class SignEd25519View(IdentityView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/identity/v2/sign-ed25519"""
        body = self.body(request)
        return ok(
            invites.do_sign_ed25519(
                body.req_str("mxid"), body.req_str("token"), body.req_str("private_key")
            )
        )
