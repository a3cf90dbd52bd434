"""The account itself: whoami, password, deactivation, profile, account data, filters."""

from __future__ import annotations

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors
from accounts.api.devices import reauth_flows
from accounts.models import User
from accounts.services import (
    account_data,
    deactivation,
    filters,
    openid,
    passwords,
    profile,
    threepids,
    uia,
)
from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError, guest_access_forbidden, not_found
from protocol.identifiers import require_room_id


def require_self(request: Request, user_id: str, action: str) -> User:
    user: User = request.user
    if user.user_id != user_id:
        raise MatrixError("M_FORBIDDEN", f"Cannot {action} for other users")
    return user


class WhoAmIView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/account/whoami"""
        return ok(
            {
                "user_id": request.user.user_id,
                "device_id": request.auth.device.device_id,
                "is_guest": request.user.is_guest,
            }
        )


class PasswordView(MatrixView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/password"""
        body = self.body(request)
        new_password = body.req_str("new_password")
        logout_devices = body.bool("logout_devices", default=True)
        passwords.check_new_password(new_password)
        if request.user is None:
            return self._reset(body.data.get("auth"), new_password, logout_devices)
        if request.user.is_guest:
            # Not on the guest access module's list; a guest upgrades by registering.
            raise guest_access_forbidden()
        session = uia.check_uia(
            body.data.get("auth"),
            uri="account/password",
            flows=reauth_flows(request.user),
            user=request.user,
        )
        passwords.do_change_password(
            request.user, new_password, logout_devices=logout_devices, keep=request.auth
        )
        uia.finish_uia(session)
        return ok()

    @staticmethod
    def _reset(auth: object, new_password: str, logout_devices: bool) -> Response:
        """A forgotten password: no access token, the user proves an email address of
        the account (m.login.email.identity, after /account/password/email/requestToken)
        or, when this server sends SMS, a phone number of it (m.login.msisdn, after
        /account/password/msisdn/requestToken). ``logout_devices`` (default true) ends
        every session of the account."""
        flows = [[uia.EMAIL_IDENTITY]]
        if settings.SMS_WEBHOOK_URL:
            flows.append([uia.MSISDN])
        session = uia.check_uia(auth, uri="account/password", flows=flows)
        proof = session.results[uia.THREEPID]
        user = selectors.local_user(proof["user_id"])
        if user is None or not user.is_active:
            raise MatrixError("M_THREEPID_NOT_FOUND", "No account has this address")
        passwords.do_change_password(user, new_password, logout_devices=logout_devices, keep=None)
        threepids.do_forget_session(proof["sid"])
        uia.finish_uia(session)
        return ok()


class DeactivateView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/deactivate"""
        body = self.body(request, allow_empty=True)
        erase = body.bool("erase")
        id_server = body.str("id_server")
        session = uia.check_uia(
            body.data.get("auth"),
            uri="account/deactivate",
            flows=reauth_flows(request.user),
            user=request.user,
        )
        unbind_result = deactivation.do_deactivate_account(
            request.user, erase=erase, id_server=id_server
        )
        uia.finish_uia(session)
        return ok({"id_server_unbind_result": unbind_result})


class ProfileView(MatrixView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_matrix/client/v3/profile/{userId}"""
        return ok(selectors.get_any_profile(user_id))


class ProfileFieldView(MatrixView):
    # profile.yaml: a key name over 255 bytes is M_KEY_TOO_LARGE (profile.check_key_name).
    unbounded_path_params = ("key",)
    auth_methods = frozenset({"PUT", "DELETE"})
    # Guest access: "Guest users may only modify their display name" (see _own_field).
    guest_methods = frozenset({"PUT", "DELETE"})

    def get(self, request: Request, user_id: str, key: str) -> Response:
        """GET /_matrix/client/v3/profile/{userId}/{keyName}"""
        fields = selectors.get_any_profile(user_id, key)
        if key not in fields:
            raise not_found("Profile field not set")
        return ok({key: fields[key]})

    def put(self, request: Request, user_id: str, key: str) -> Response:
        """PUT /_matrix/client/v3/profile/{userId}/{keyName}"""
        user = self._own_field(request, user_id, key, "set profile fields")
        body = self.body(request)
        profile.check_key_name(key)
        if key not in body:
            raise MatrixError("M_MISSING_PARAM", f"Missing '{key}'")
        if len(body.data) != 1:
            raise MatrixError("M_BAD_JSON", "The body must contain exactly the one field")
        profile.do_set_profile_field(user, key, body.data[key])
        return ok()

    def delete(self, request: Request, user_id: str, key: str) -> Response:
        """DELETE /_matrix/client/v3/profile/{userId}/{keyName}"""
        user = self._own_field(request, user_id, key, "delete profile fields")
        profile.do_delete_profile_field(user, key)
        return ok()

    @staticmethod
    def _own_field(request: Request, user_id: str, key: str, action: str) -> User:
        """The caller, changing a field of their own profile: a guest only its
        displayname (Client-Server API, "Guest access"), a suspended user none."""
        user = require_self(request, user_id, action)
        if user.is_guest and key != "displayname":
            raise guest_access_forbidden("Guests may only change their display name")
        selectors.check_not_suspended(user)
        return user


class AccountDataView(MatrixView):
    requires_auth = True

    def get(self, request: Request, user_id: str, data_type: str, room_id: str = "") -> Response:
        """GET /_matrix/client/v3/user/{userId}[/rooms/{roomId}]/account_data/{type}"""
        user = require_self(request, user_id, "read account data")
        if room_id:
            require_room_id(room_id)
        return ok(selectors.get_account_data(user, data_type, room_id))

    def put(self, request: Request, user_id: str, data_type: str, room_id: str = "") -> Response:
        """PUT /_matrix/client/v3/user/{userId}[/rooms/{roomId}]/account_data/{type}"""
        user = require_self(request, user_id, "set account data")
        if room_id:
            require_room_id(room_id)
        body = self.body(request)
        account_data.do_set_account_data(user, data_type, body.data, room_id)
        return ok()


class FilterCreateView(MatrixView):
    requires_auth = True

    def post(self, request: Request, user_id: str) -> Response:
        """POST /_matrix/client/v3/user/{userId}/filter"""
        user = require_self(request, user_id, "create filters")
        body = self.body(request)
        return ok({"filter_id": str(filters.do_create_filter(user, body.data))})


class FilterView(MatrixView):
    requires_auth = True

    def get(self, request: Request, user_id: str, filter_id: str) -> Response:
        """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
        user = require_self(request, user_id, "read filters")
        return ok(selectors.get_filter(user, filter_id))


class OpenIdRequestTokenView(MatrixView):
    requires_auth = True

    def post(self, request: Request, user_id: str) -> Response:
        """POST /_matrix/client/v3/user/{userId}/openid/request_token"""
        user = require_self(request, user_id, "request OpenID tokens")
        self.body(request)  # an empty object, reserved for future expansion
        issued = openid.do_issue_openid_token(user)
        return ok(
            {
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "matrix_server_name": settings.SERVER_NAME,
                "expires_in": issued.expires_in_s,
            }
        )
