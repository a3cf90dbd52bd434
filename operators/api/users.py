"""/_synapse/admin endpoints: users, their devices, media and moderation, registration
tokens; and the Client-Server API's GET /admin/whois/{userId}.

Shapes and errors follow Synapse's admin API (docs/admin_api/user_admin_api.md): admin
tools written for Synapse work unchanged. Every change goes through an operator action
(operators/services/users.py), which writes the audit entry.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from django.conf import settings
from django.urls import URLPattern, path, re_path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors as account_selectors
from accounts import selectors_threepids
from accounts.api.auth import client_ip
from accounts.models import RegistrationToken
from accounts.services import registration_tokens, threepids
from config.matrix_api import MatrixView, ok
from operators import selectors
from operators.api.base import AdminView
from operators.models import AdminJob
from operators.services import users
from protocol.errors import MatrixError
from protocol.identifiers import parse_user_id
from rooms.selectors import joined_room_ids

A = "_synapse/admin/"


def _invalid(error: str) -> MatrixError:
    return MatrixError("M_INVALID_PARAM", error)


def query_int(request: Request, name: str, default: int, *, minimum: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"Query parameter {name} must be an integer") from None
    if value < minimum:
        raise _invalid(f"Query parameter {name} must be at least {minimum}")
    return value


def query_bool(request: Request, name: str, default: bool | None) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise _invalid(f"Boolean query parameter '{name}' must be one of ['true', 'false']")
    return raw == "true"


def query_choice(request: Request, name: str, choices: Any, default: str) -> str:
    raw = request.query_params.get(name, default)
    if raw not in choices:
        raise _invalid(f"Query parameter '{name}' must be one of {sorted(choices)}")
    return str(raw)


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise _invalid(f"'{name}' must be a boolean")
    return value


def _threepids_field(value: Any) -> list[tuple[str, str]]:
    """PUT /_synapse/admin/v2/users' ``threepids``: [{medium, address}], canonicalised."""
    if not isinstance(value, list):
        raise _invalid("'threepids' must be a list")
    wanted: list[tuple[str, str]] = []
    for entry in value:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("medium"), str)
            and isinstance(entry.get("address"), str)
        ):
            raise _invalid("Each of 'threepids' needs a 'medium' and an 'address'")
        medium = entry["medium"]
        pair = (medium, threepids.canonical_address(medium, entry["address"]))
        if pair not in wanted:
            wanted.append(pair)
    return wanted


class AdminUserView(AdminView):
    """An admin view about one local user: the actions take the user ID as given, the
    views check it names one of ours first (400 for another server's, 404 unknown)."""

    def actor(self, request: Request) -> dict[str, str]:
        return {"actor": request.user.user_id, "via": "api", "ip": client_ip(request)}


# --- Users --------------------------------------------------------------------------------


class UsersListView(AdminView):
    # v3 lets ``deactivated`` be omitted for both; v2's default is active users only.
    v3 = False

    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v2/users and /_synapse/admin/v3/users"""
        start = query_int(request, "from", 0)
        limit = query_int(request, "limit", 100, minimum=1)
        query = selectors.UserQuery(
            start=start,
            limit=limit,
            guests=bool(query_bool(request, "guests", True)),
            deactivated=query_bool(request, "deactivated", None if self.v3 else False),
            admins=query_bool(request, "admins", None),
            name=request.query_params.get("name"),
            user_id=request.query_params.get("user_id"),
            order_by=query_choice(request, "order_by", selectors.USER_ORDER, "name"),
            direction=query_choice(request, "dir", ("f", "b"), "f"),
            not_user_types=tuple(request.query_params.getlist("not_user_type")),
        )
        if not self.v3 and query.deactivated:
            # v2's deactivated=true lists deactivated users as well, not only them.
            query.deactivated = None
        page, total = selectors.users_page(query)
        answer: dict[str, Any] = {"users": page, "total": total}
        if start + len(page) < total:
            answer["next_token"] = str(start + len(page))
        return ok(answer)


class UsersListV3View(UsersListView):
    v3 = True


class UserView(AdminUserView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v2/users/{userId}"""
        return ok(selectors.user_details(users.access_local_user(user_id)))

    def put(self, request: Request, user_id: str) -> Response:
        """PUT /_synapse/admin/v2/users/{userId}: create or modify an account"""
        body = self.body(request, allow_empty=True).data
        changes: dict[str, Any] = {}
        for key in ("password", "displayname", "avatar_url", "user_type"):
            if key in body:
                if body[key] is not None and not isinstance(body[key], str):
                    raise _invalid(f"'{key}' must be a string")
                changes[key] = body[key]
        for key in ("logout_devices", "admin", "deactivated", "locked"):
            if key in body:
                changes[key] = _bool_field(body, key)
        if "threepids" in body:
            changes["threepids"] = _threepids_field(body["threepids"])
        user, created = users.create_or_modify_user(user_id, changes, **self.actor(request))
        return ok(selectors.user_details(user), status=201 if created else 200)


class UserAdminView(AdminUserView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v1/users/{userId}/admin"""
        return ok({"admin": users.access_local_user(user_id).is_staff})

    def put(self, request: Request, user_id: str) -> Response:
        """PUT /_synapse/admin/v1/users/{userId}/admin"""
        admin = _bool_field(self.body(request).data, "admin")
        if not admin and user_id == request.user.user_id:
            raise MatrixError("M_FORBIDDEN", "You may not demote yourself.", status=400)
        users.set_admin(user_id, admin, **self.actor(request))
        return ok()


class DeactivateView(AdminUserView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/deactivate/{userId}"""
        body = self.body(request, allow_empty=True).data
        erase = body.get("erase", False)
        if not isinstance(erase, bool):
            raise _invalid("'erase' must be a boolean")
        users.deactivate_user(user_id, erase=erase, **self.actor(request))
        return ok({"id_server_unbind_result": "success"})


class ResetPasswordView(AdminUserView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/reset_password/{userId}"""
        body = self.body(request)
        new_password = body.req_str("new_password")
        logout_devices = body.bool("logout_devices", default=True)
        users.reset_password(
            user_id, new_password, logout_devices=logout_devices, **self.actor(request)
        )
        return ok()


class ThreepidUserView(AdminView):
    unbounded_path_params = ("address",)  # an email address may be up to 320 characters

    def get(self, request: Request, medium: str, address: str) -> Response:
        """GET /_synapse/admin/v1/threepid/{medium}/users/{address}"""
        try:
            canonical = threepids.canonical_address(medium, address)
        except MatrixError:
            canonical = address
        owner = selectors_threepids.owner_of(medium, canonical)
        if owner is None:
            raise MatrixError("M_NOT_FOUND", "User not found", status=404)
        return ok({"user_id": owner.user_id})


class WhoisView(AdminUserView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v1/whois/{userId}"""
        return ok(selectors.whois(users.access_local_user(user_id)))


class ClientWhoisView(MatrixView):
    requires_auth = True

    def get(self, request: Request, user_id: str) -> Response:
        """GET /_matrix/client/v3/admin/whois/{userId}: server admins, or the user
        asking about themselves."""
        if not request.user.is_staff and user_id != request.user.user_id:
            raise MatrixError("M_FORBIDDEN", "You are not a server admin", status=403)
        return ok(selectors.whois(users.access_local_user(user_id)))


class JoinedRoomsView(AdminUserView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v1/users/{userId}/joined_rooms"""
        user = users.access_local_user(user_id)
        rooms = sorted(joined_room_ids(user.user_id))
        return ok({"joined_rooms": rooms, "total": len(rooms)})


class UserMediaView(AdminUserView):
    def _page(self, request: Request, user_id: str) -> tuple[Any, list[Any], int]:
        user = users.access_local_user(user_id)
        start = query_int(request, "from", 0)
        limit = query_int(request, "limit", 100, minimum=1)
        order_by = query_choice(request, "order_by", selectors.MEDIA_ORDER, "created_ts")
        direction = query_choice(request, "dir", ("f", "b"), "f")
        media = list(selectors.user_media(user, start, limit, order_by, direction))
        return user, media, start

    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v1/users/{userId}/media"""
        user, media, start = self._page(request, user_id)
        total = selectors.LocalMedia.objects.filter(user_id=user.user_id).count()
        answer: dict[str, Any] = {
            "media": [selectors.media_entry(m) for m in media],
            "total": total,
        }
        if start + len(media) < total:
            answer["next_token"] = start + len(media)
        return ok(answer)

    def delete(self, request: Request, user_id: str) -> Response:
        """DELETE /_synapse/admin/v1/users/{userId}/media: the page the same query
        parameters would list"""
        _, media, _ = self._page(request, user_id)
        deleted = users.delete_user_media(
            user_id, [m.media_id for m in media], **self.actor(request)
        )
        return ok({"deleted_media": deleted, "total": len(deleted)})


# --- Moderation ---------------------------------------------------------------------------


class SuspendView(AdminUserView):
    def put(self, request: Request, user_id: str) -> Response:
        """PUT /_synapse/admin/v1/suspend/{userId}"""
        body = self.body(request).data
        if "suspend" not in body:
            raise MatrixError("M_MISSING_PARAM", "Missing parameter: suspend")
        suspend = _bool_field(body, "suspend")
        users.suspend_user(user_id, suspend, **self.actor(request))
        return ok({f"user_{user_id}_suspended": suspend})


class AccountModerationView(AdminUserView):
    """Client-Server API, "Account moderation" (v1.18): GET and PUT
    /_matrix/client/v1/admin/{suspend,lock}/{userId}, for server admins."""

    field = ""

    def _target(self, request: Request, user_id: str) -> Any:
        try:
            domain = parse_user_id(user_id).domain
        except ValueError:
            raise _invalid("Invalid user ID") from None
        if domain != settings.SERVER_NAME:
            raise _invalid("User does not belong to the local server.")
        user = users.access_local_user(user_id)
        if not user.is_active:
            raise MatrixError("M_NOT_FOUND", "User not found", status=404)
        return user

    def get(self, request: Request, user_id: str) -> Response:
        """GET /_matrix/client/v1/admin/{suspend,lock}/{userId}"""
        user = self._target(request, user_id)
        value = user.is_suspended if self.field == "suspended" else user.is_locked
        return ok({self.field: value})

    def put(self, request: Request, user_id: str) -> Response:
        """PUT /_matrix/client/v1/admin/{suspend,lock}/{userId}"""
        body = self.body(request).data
        if self.field not in body:
            raise MatrixError("M_MISSING_PARAM", f"Missing parameter: {self.field}")
        value = _bool_field(body, self.field)
        user = self._target(request, user_id)
        # The spec: not one's own account, nor another administrator's.
        if user.pk == request.user.pk or user.is_staff:
            raise MatrixError(
                "M_FORBIDDEN", f"An administrator's account cannot be {self.field}", status=403
            )
        action = users.suspend_user if self.field == "suspended" else users.lock_user
        action(user_id, value, **self.actor(request))
        return ok({self.field: value})


class SuspendAccountView(AccountModerationView):
    field = "suspended"


class LockAccountView(AccountModerationView):
    field = "locked"


class ShadowBanView(AdminUserView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/users/{userId}/shadow_ban"""
        users.set_shadow_banned(user_id, True, **self.actor(request))
        return ok()

    def delete(self, request: Request, user_id: str) -> Response:
        """DELETE /_synapse/admin/v1/users/{userId}/shadow_ban"""
        users.set_shadow_banned(user_id, False, **self.actor(request))
        return ok()


class OverrideRatelimitView(AdminUserView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v1/users/{userId}/override_ratelimit"""
        user = users.access_local_user(user_id)
        if user.ratelimit_messages_per_second is None:
            return ok()
        return ok(
            {
                "messages_per_second": user.ratelimit_messages_per_second,
                "burst_count": user.ratelimit_burst_count or 0,
            }
        )

    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/users/{userId}/override_ratelimit"""
        body = self.body(request, allow_empty=True).data
        values = {}
        for key in ("messages_per_second", "burst_count"):
            value = body.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _invalid(f"{key} must be a non-negative integer")
            values[key] = value
        users.set_ratelimit_override(
            user_id, values["messages_per_second"], values["burst_count"], **self.actor(request)
        )
        return ok(values)

    def delete(self, request: Request, user_id: str) -> Response:
        """DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit"""
        users.clear_ratelimit_override(user_id, **self.actor(request))
        return ok()


class LoginAsView(AdminUserView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/users/{userId}/login"""
        body = self.body(request, allow_empty=True).data
        valid_until_ms = body.get("valid_until_ms")
        if valid_until_ms is not None and (
            not isinstance(valid_until_ms, int) or isinstance(valid_until_ms, bool)
        ):
            raise _invalid("'valid_until_ms' parameter must be an int")
        token = users.login_as(user_id, valid_until_ms, **self.actor(request))
        return ok({"access_token": token})


# --- Devices ------------------------------------------------------------------------------


class UserDevicesView(AdminUserView):
    def get(self, request: Request, user_id: str) -> Response:
        """GET /_synapse/admin/v2/users/{userId}/devices"""
        user = users.access_local_user(user_id)
        devices = account_selectors.list_devices(user)
        return ok(
            {"devices": [selectors.device_entry(user, d) for d in devices], "total": len(devices)}
        )

    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v2/users/{userId}/devices"""
        device_id = self.body(request).req_str("device_id")
        users.create_device(user_id, device_id, **self.actor(request))
        return ok(status=201)


class UserDeviceView(AdminUserView):
    def get(self, request: Request, user_id: str, device_id: str) -> Response:
        """GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}"""
        user = users.access_local_user(user_id)
        device = account_selectors.get_device(user, device_id)
        return ok(selectors.device_entry(user, device))

    def put(self, request: Request, user_id: str, device_id: str) -> Response:
        """PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}"""
        display_name = self.body(request, allow_empty=True).str("display_name")
        if display_name is None:
            account_selectors.get_device(users.access_local_user(user_id), device_id)
            return ok()
        users.rename_device(user_id, device_id, display_name, **self.actor(request))
        return ok()

    def delete(self, request: Request, user_id: str, device_id: str) -> Response:
        """DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}"""
        users.delete_devices(user_id, [device_id], **self.actor(request))
        return ok()


class DeleteDevicesView(AdminUserView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v2/users/{userId}/delete_devices"""
        devices = self.body(request).list("devices", required=True) or []
        if not all(isinstance(d, str) for d in devices):
            raise _invalid("'devices' must be a list of device IDs")
        users.delete_devices(user_id, devices, **self.actor(request))
        return ok()


# --- Redacting a user's events ------------------------------------------------------------


class RedactUserView(AdminUserView):
    def post(self, request: Request, user_id: str) -> Response:
        """POST /_synapse/admin/v1/user/{userId}/redact"""
        body = self.body(request).data
        rooms = body.get("rooms")
        if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
            raise _invalid("'rooms' must be a list of room IDs")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise _invalid("'reason' must be a string")
        limit = body.get("limit")
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise _invalid("'limit' must be a positive integer")
        job = users.redact_user_events(user_id, rooms, reason, limit=limit, **self.actor(request))
        return ok({"redact_id": job.job_id})


class RedactStatusView(AdminView):
    def get(self, request: Request, redact_id: str) -> Response:
        """GET /_synapse/admin/v1/user/redact_status/{redactId}"""
        job = AdminJob.objects.filter(job_id=redact_id, kind=users.REDACT_KIND).first()
        if job is None:
            raise MatrixError("M_NOT_FOUND", f"redact id '{redact_id}' not found", status=404)
        return ok(
            {
                "status": job.status,
                "failed_redactions": job.progress.get("failed_redactions", {}),
            }
        )


# --- Registration tokens ------------------------------------------------------------------


def token_json(row: RegistrationToken) -> dict[str, Any]:
    return {
        "token": row.token,
        "uses_allowed": row.uses_allowed,
        "pending": row.pending,
        "completed": row.completed,
        "expiry_time": row.expiry_time_ms,
    }


class RegistrationTokensView(AdminView):
    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/registration_tokens"""
        valid = query_bool(request, "valid", None)
        rows = RegistrationToken.objects.order_by("created_at", "token")
        answer = [
            token_json(row)
            for row in rows
            if valid is None or registration_tokens.is_usable(row) == valid
        ]
        return ok({"registration_tokens": answer})


class NewRegistrationTokenView(AdminUserView):
    def post(self, request: Request) -> Response:
        """POST /_synapse/admin/v1/registration_tokens/new"""
        body = self.body(request, allow_empty=True).data
        token = body.get("token")
        if token is not None and not isinstance(token, str):
            raise _invalid("token must be a string")
        row = users.create_registration_token(
            token,
            length=body.get("length", 16),
            uses_allowed=body.get("uses_allowed"),
            expiry_time=body.get("expiry_time"),
            **self.actor(request),
        )
        return ok(token_json(row))


class RegistrationTokenView(AdminUserView):
    unbounded_path_params = ("token",)

    def get(self, request: Request, token: str) -> Response:
        """GET /_synapse/admin/v1/registration_tokens/{token}"""
        row = RegistrationToken.objects.filter(token=token).first()
        if row is None:
            raise MatrixError("M_NOT_FOUND", f"No such registration token: {token}", status=404)
        return ok(token_json(row))

    def put(self, request: Request, token: str) -> Response:
        """PUT /_synapse/admin/v1/registration_tokens/{token}"""
        body = self.body(request, allow_empty=True).data
        changes = {k: body[k] for k in ("uses_allowed", "expiry_time") if k in body}
        row = users.update_registration_token(token, changes, **self.actor(request))
        return ok(token_json(row))

    def delete(self, request: Request, token: str) -> Response:
        """DELETE /_synapse/admin/v1/registration_tokens/{token}"""
        users.delete_registration_token(token, **self.actor(request))
        return ok()


class ServerVersionView(MatrixView):
    def get(self, request: Request) -> Response:
        """GET /_synapse/admin/v1/server_version (no authentication, as in Synapse)"""
        return ok({"server_version": metadata.version("trellis")})


U = r"(?P<user_id>[^/]+)"
urlpatterns: list[URLPattern] = [
    path(A + "v2/users", UsersListView.as_view()),
    path(A + "v3/users", UsersListV3View.as_view()),
    re_path(rf"^{A}v2/users/{U}$", UserView.as_view()),
    re_path(rf"^{A}v1/users/{U}/admin$", UserAdminView.as_view()),
    re_path(rf"^{A}v1/deactivate/{U}$", DeactivateView.as_view()),
    re_path(rf"^{A}v1/reset_password/{U}$", ResetPasswordView.as_view()),
    re_path(rf"^{A}v1/whois/{U}$", WhoisView.as_view()),
    re_path(
        rf"^{A}v1/threepid/(?P<medium>[^/]+)/users/(?P<address>[^/]+)$",
        ThreepidUserView.as_view(),
    ),
    re_path(rf"^_matrix/client/(?:r0|v3)/admin/whois/{U}$", ClientWhoisView.as_view()),
    re_path(rf"^{A}v1/users/{U}/joined_rooms$", JoinedRoomsView.as_view()),
    re_path(rf"^{A}v1/users/{U}/media$", UserMediaView.as_view()),
    re_path(rf"^{A}v1/suspend/{U}$", SuspendView.as_view()),
    re_path(rf"^{A}v1/users/{U}/shadow_ban$", ShadowBanView.as_view()),
    re_path(rf"^_matrix/client/v1/admin/suspend/{U}$", SuspendAccountView.as_view()),
    re_path(rf"^_matrix/client/v1/admin/lock/{U}$", LockAccountView.as_view()),
    re_path(rf"^{A}v1/users/{U}/override_ratelimit$", OverrideRatelimitView.as_view()),
    re_path(rf"^{A}v1/users/{U}/login$", LoginAsView.as_view()),
    re_path(rf"^{A}v2/users/{U}/devices$", UserDevicesView.as_view()),
    re_path(rf"^{A}v2/users/{U}/devices/(?P<device_id>[^/]+)$", UserDeviceView.as_view()),
    re_path(rf"^{A}v2/users/{U}/delete_devices$", DeleteDevicesView.as_view()),
    re_path(rf"^{A}v1/user/redact_status/(?P<redact_id>[^/]+)$", RedactStatusView.as_view()),
    re_path(rf"^{A}v1/user/{U}/redact$", RedactUserView.as_view()),
    path(A + "v1/registration_tokens", RegistrationTokensView.as_view()),
    path(A + "v1/registration_tokens/new", NewRegistrationTokenView.as_view()),
    re_path(rf"^{A}v1/registration_tokens/(?P<token>[^/]+)$", RegistrationTokenView.as_view()),
    path(A + "v1/server_version", ServerVersionView.as_view()),
]
