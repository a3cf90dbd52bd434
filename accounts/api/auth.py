"""Registration, login, token refresh and logout."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.devices import reauth_flows
from accounts.models import User
from accounts.selectors import check_not_locked, local_user
from accounts.services import (
    login_tokens,
    profile,
    registration,
    registration_tokens,
    sessions,
    threepids,
    uia,
)
from accounts.services.passwords import (
    check_new_password,
    check_user_password,
    resolve_login_identifier,
)
from config.matrix_api import Body, MatrixView, ok
from config.ratelimit import check_ratelimit
from protocol.errors import MatrixError, guest_access_forbidden, missing_param


def client_ip(request: Request) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def registration_flows() -> list[list[str]]:
    """With TRELLIS_REGISTRATION_REQUIRES_EMAIL on, only the email flow (after the
    registration token, if registration needs one); otherwise the usual flow first, an
    email flow beside it for clients that want the address on the new account, and a
    phone flow too when this server can send SMS (TRELLIS_SMS_WEBHOOK_URL)."""
    first = [uia.REGISTRATION_TOKEN] if settings.REGISTRATION == "token" else []
    if settings.REGISTRATION_REQUIRES_EMAIL:
        return [[*first, uia.EMAIL_IDENTITY]]
    flows = [first or [uia.DUMMY], [*first, uia.EMAIL_IDENTITY]]
    if settings.SMS_WEBHOOK_URL:
        flows.append([*first, uia.MSISDN])
    return flows


def well_known() -> dict[str, object]:
    return {"m.homeserver": {"base_url": settings.PUBLIC_BASEURL}}


class RegisterView(MatrixView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/register"""
        kind = request.query_params.get("kind", "user")
        if kind == "guest":
            return self._register_guest(request)
        if kind != "user":
            raise MatrixError("M_INVALID_PARAM", "kind must be 'user' or 'guest'")
        if settings.REGISTRATION == "closed":
            raise MatrixError("M_FORBIDDEN", "Registration has been disabled")
        data = self.body(request).data
        check_ratelimit("register", client_ip(request))
        auth = data.get("auth")
        params = {key: value for key, value in data.items() if key != "auth"}
        # Never the client's to give.
        params.pop(registration.PASSWORD_HASH, None)
        params.pop(registration.GUEST_USER_ID, None)
        password_hash = guest_user_id = None
        earlier = uia.find_session(auth, uri="register")
        if earlier is not None and not params:
            # A request of the session that sends only ``auth`` means the parameters
            # its first request gave (as Synapse does; sytest "registration remembers
            # parameters").
            params = dict(earlier.results.get(uia.REQUEST) or {})
            password_hash = params.pop(registration.PASSWORD_HASH, None)
            guest_user_id = params.pop(registration.GUEST_USER_ID, None)
        body = Body(params)
        device_id = body.str("device_id")
        display_name = body.str("initial_device_display_name")
        inhibit_login = body.bool("inhibit_login")
        refresh = body.bool("refresh_token")
        registered = earlier.results.get(uia.REGISTERED_USER) if earlier is not None else None
        if registered is not None:
            # Retrying with a session that already registered: answer as its completion
            # did, logging in again unless told not to (sytest "registration is
            # idempotent"), rather than failing with M_USER_IN_USE.
            user = local_user(registered)
            if user is None or not user.is_active:
                raise MatrixError("M_FORBIDDEN", "This registration is no longer valid")
            return self._registered(request, user, inhibit_login, device_id, display_name, refresh)
        username = body.str("username")
        password = body.str("password")
        guest_access_token = body.str("guest_access_token")
        # Client-Server API, POST /register: these checks come before UIA, so that a
        # client does not complete authentication only to be told the request is bad.
        guest = None
        if guest_user_id is not None:
            guest = local_user(guest_user_id)
        elif guest_access_token is not None:
            # "Guest access": a guest upgrades its account by registering with its
            # access token; "they are also required to specify the username parameter
            # to the value of the local part of their username".
            if username is None:
                raise missing_param("username")
            guest = registration.access_upgradable_guest(username, guest_access_token)
        localpart = None
        if username and guest is None:
            localpart = registration.check_username_available(username)
        if password is not None:
            check_new_password(password)
        if not inhibit_login:
            sessions.check_device_fields(device_id, display_name)

        starts_session = not (isinstance(auth, dict) and "session" in auth)
        session = uia.check_uia(
            auth,
            uri="register",
            flows=registration_flows(),
            remember=registration.request_to_remember(params, guest) if starts_session else None,
        )
        proven = session.results.get(uia.THREEPID)
        with transaction.atomic():
            if guest is not None:
                user = registration.do_upgrade_guest(guest, password, password_hash=password_hash)
            else:
                user = registration.do_create_user(
                    localpart, password, password_hash=password_hash
                )
            if proven:
                # The validated address or number becomes the new account's
                # (M_THREEPID_IN_USE if another registration took it meanwhile, and no
                # account is made).
                threepids.do_add_threepid(
                    user,
                    proven["medium"],
                    proven["address"],
                    validated_at_ms=proven["validated_at_ms"],
                    notify=False,
                )
                threepids.do_forget_session(proven["sid"])
        token = session.results.get(uia.REGISTRATION_TOKEN)
        if token:
            registration_tokens.do_complete(token)
        uia.do_record_registration(session, user)
        return self._registered(request, user, inhibit_login, device_id, display_name, refresh)

    def _register_guest(self, request: Request) -> Response:
        """POST /_matrix/client/v3/register?kind=guest: a guest account, with no UIA.

        "When registering a guest account, all parameters in the request body with the
        exception of initial_device_display_name MUST BE ignored by the server. The
        server MUST pick a device_id for the account regardless of input."
        """
        if not settings.ALLOW_GUEST_ACCESS:
            raise guest_access_forbidden("Guest access is disabled")
        body = self.body(request, allow_empty=True)
        check_ratelimit("register", client_ip(request))
        display_name = body.str("initial_device_display_name")
        sessions.check_device_fields(None, display_name)
        with transaction.atomic():
            user = registration.do_create_user(None, None, guest=True)
            new = sessions.do_create_session(
                user, initial_display_name=display_name, ip=client_ip(request)
            )
        return ok({**new.as_login_response(), "home_server": settings.SERVER_NAME})

    def _registered(
        self,
        request: Request,
        user: User,
        inhibit_login: bool,
        device_id: str | None,
        display_name: str | None,
        refresh: bool,
    ) -> Response:
        if inhibit_login:
            return ok({"user_id": user.user_id, "home_server": settings.SERVER_NAME})
        new = sessions.do_create_session(
            user,
            device_id=device_id,
            initial_display_name=display_name,
            refresh=refresh,
            ip=client_ip(request),
        )
        return ok({**new.as_login_response(), "home_server": settings.SERVER_NAME})


class RegisterAvailableView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/register/available"""
        check_ratelimit("register_available", client_ip(request))
        username = self.query_str(request, "username", required=True)
        assert username is not None
        registration.check_username_available(username)
        return ok({"available": True})


class RegistrationTokenValidityView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v1/register/m.login.registration_token/validity"""
        if settings.REGISTRATION != "token":
            raise MatrixError("M_FORBIDDEN", "Registration tokens are not in use")
        check_ratelimit("register_available", client_ip(request))
        token = self.query_str(request, "token", required=True)
        assert token is not None
        return ok({"valid": registration_tokens.is_valid(token)})


LOGIN_FLOWS = [
    {"type": "m.login.password"},
    # get_login_token: this server offers POST /login/get_token (Client-Server API, v1.7).
    {"type": "m.login.token", "get_login_token": True},
]


class LoginView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/login"""
        return ok({"flows": LOGIN_FLOWS})

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/login"""
        body = self.body(request)
        check_ratelimit("login", client_ip(request))
        login_type = body.req_str("type")
        # Every field is checked before a login token is spent.
        device_id = body.str("device_id")
        display_name = body.str("initial_device_display_name")
        refresh = body.bool("refresh_token")
        if login_type == "m.login.password":
            user = self._password_user(body.req_str("password"), body.data)
        elif login_type == "m.login.token":
            user = login_tokens.do_consume_login_token(body.req_str("token"))
            if not user.is_active:
                raise MatrixError("M_USER_DEACTIVATED", "This account has been deactivated")
        else:
            raise MatrixError("M_UNKNOWN", f"Unknown login type {login_type!r}")
        # A locked account cannot get a new access token until unlocked.
        check_not_locked(user)
        new = sessions.do_create_session(
            user,
            device_id=device_id,
            initial_display_name=display_name,
            refresh=refresh,
            ip=client_ip(request),
        )
        return ok(
            {
                **new.as_login_response(),
                "home_server": settings.SERVER_NAME,
                "well_known": well_known(),
            }
        )

    @staticmethod
    def _password_user(password: str, data: dict[str, object]) -> User:
        localpart = resolve_login_identifier(data)
        user = local_user(f"@{localpart}:{settings.SERVER_NAME}") if localpart else None
        if user is not None and not user.is_active:
            raise MatrixError("M_USER_DEACTIVATED", "This account has been deactivated")
        # Only failed attempts count against the user; successful ones merely check.
        check_ratelimit("login_failed", localpart or "", update=False)
        if user is None or not check_user_password(user, password):
            check_ratelimit("login_failed", localpart or "")
            raise MatrixError("M_FORBIDDEN", "Invalid username or password")
        return user


class LoginTokenView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v1/login/get_token"""
        body = self.body(request, allow_empty=True)
        # "Servers MUST always re-prompt": a session is deleted once used, so every
        # token needs a fresh UIA.
        session = uia.check_uia(
            body.data.get("auth"),
            uri="login/get_token",
            flows=reauth_flows(request.user),
            user=request.user,
        )
        new = login_tokens.do_create_login_token(request.user)
        uia.finish_uia(session)
        return ok({"login_token": new.login_token, "expires_in_ms": new.expires_in_ms})


class RefreshView(MatrixView):
    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/refresh"""
        body = self.body(request)
        new = sessions.do_refresh(body.req_str("refresh_token"))
        return ok(
            {
                "access_token": new.access_token,
                "refresh_token": new.refresh_token,
                "expires_in_ms": new.expires_in_ms,
            }
        )


class LogoutView(MatrixView):
    requires_auth = True
    allowed_when_locked = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/logout"""
        sessions.do_logout(request.auth)
        return ok()


class LogoutAllView(MatrixView):
    requires_auth = True
    allowed_when_locked = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/logout/all"""
        sessions.do_logout_all(request.user)
        return ok()


class SharedSecretRegisterView(MatrixView):
    """Synapse-compatible admin registration, so existing scripts can create users."""

    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/register"""
        return ok({"nonce": registration.new_registration_nonce()})

    def post(self, request: Request) -> Response:
        """POST /_synapse/admin/v1/register"""
        body = self.body(request)
        user = registration.do_shared_secret_register(
            nonce=body.req_str("nonce"),
            username=body.req_str("username"),
            password=body.req_str("password"),
            admin=body.bool("admin"),
            mac=body.req_str("mac"),
            user_type=body.str("user_type"),
        )
        displayname = body.str("displayname")
        if displayname:
            profile.do_set_profile_field(user, "displayname", displayname)
        new = sessions.do_create_session(user, ip=client_ip(request))
        return ok(
            {
                "user_id": user.user_id,
                "access_token": new.access_token,
                "device_id": new.device_id,
                "home_server": settings.SERVER_NAME,
            }
        )
