"""The operator's view of accounts: users, devices, sessions, registration tokens.

Accounts are changed only through operator actions (the buttons on a user's page, with a
confirmation form, and the actions of the user list), each calling an operator action
function with ``via="portal"`` and the operator as actor, which writes the audit entry.
Devices, sessions and account data are the users' own: read-only here.

A user's password hash is never shown: the page says whether a password is set, and the
"Reset password" form sets a new one (and logs the user out everywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import AccessToken, AccountData, Device, RegistrationToken, User
from config.admin import log_operator_action
from config.portal import (
    ObjectAction,
    ObjectActionsAdmin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    actor,
    job_table,
    link,
    run_bulk,
    table,
)
from media.models import LocalMedia
from operators.models import AdminJob
from operators.services import server, users
from protocol.errors import MatrixError
from rooms.models import Membership

# --- The operator actions on an account ----------------------------------------------
# Each calls the operator action function of operators.services.users (or .server),
# which does the work and writes the audit entry; the Django log entry beside it keeps
# the user's "History" page.


def deactivate(request: HttpRequest, user: User, erase: bool) -> str:
    with transaction.atomic():
        users.deactivate_user(user.user_id, erase=erase, **actor(request))
        log_operator_action(
            request, [user], "Deactivated the account and logged out all its devices."
        )
    return f"Deactivated {user.user_id}" + (" and erased its profile." if erase else ".")


def log_out_everywhere(request: HttpRequest, user: User) -> str:
    with transaction.atomic():
        devices = user.devices.count()
        users.log_out_everywhere(user.user_id, **actor(request))
        log_operator_action(request, [user], f"Logged out all {devices} device(s).")
    return f"Logged {user.user_id} out of {devices} device(s)."


def reset_password(request: HttpRequest, user: User, password: str, logout: bool) -> str:
    with transaction.atomic():
        devices = user.devices.count()
        users.reset_password(user.user_id, password, logout_devices=logout, **actor(request))
        log_operator_action(
            request,
            [user],
            f"Set a new password; logged out all {devices} device(s)."
            if logout
            else "Set a new password.",
        )
    return (
        f"Set a new password for {user.user_id} and logged out its {devices} device(s)."
        if logout
        else f"Set a new password for {user.user_id}."
    )


def set_flag(request: HttpRequest, user: User, flag: str, value: bool) -> str:
    """Suspend, lock, shadow-ban or make admin (or undo it)."""
    change, done, undone = FLAGS[flag]
    with transaction.atomic():
        change(user.user_id, value, **actor(request))
        log_operator_action(request, [user], (done if value else undone) + ".")
    return f"{user.user_id}: {done if value else undone}."


FLAGS: dict[str, tuple[Callable[..., None], str, str]] = {
    "suspended": (users.suspend_user, "suspended", "no longer suspended"),
    "locked": (users.lock_user, "locked", "unlocked"),
    "shadow_banned": (users.set_shadow_banned, "shadow-banned", "no longer shadow-banned"),
    "admin": (users.set_admin, "made a server admin", "no longer a server admin"),
}


def override_ratelimit(request: HttpRequest, user: User, data: dict[str, Any]) -> str:
    with transaction.atomic():
        if data["clear"]:
            users.clear_ratelimit_override(user.user_id, **actor(request))
            message = "back to the server's message rate limit"
        else:
            rate, burst = data["messages_per_second"], data["burst_count"]
            users.set_ratelimit_override(user.user_id, rate, burst, **actor(request))
            message = (
                "no message rate limit"
                if rate == 0
                else f"message rate limit {rate}/s, bursts of {burst}"
            )
        log_operator_action(request, [user], f"Rate limit: {message}.")
    return f"{user.user_id}: {message}."


def redact_events(request: HttpRequest, user: User, data: dict[str, Any]) -> str:
    rooms = [r for r in data["rooms"].split() if r]
    job = users.redact_user_events(user.user_id, rooms, data["reason"] or None, **actor(request))
    log_operator_action(request, [user], f"Started redacting its events (job {job.job_id}).")
    return (
        f"Redacting the events of {user.user_id} in "
        f"{'the rooms given' if rooms else 'every room'}: see its progress under Admin jobs."
    )


def remove_threepid(request: HttpRequest, user: User, data: dict[str, Any]) -> str:
    medium, address = data["threepid"].split(":", 1)
    with transaction.atomic():
        users.remove_threepid(user.user_id, medium, address, **actor(request))
        log_operator_action(request, [user], f"Removed the {medium} address {address}.")
    return f"Removed {address} from {user.user_id}."


def send_notice(request: HttpRequest, user: User, data: dict[str, Any]) -> str:
    content = {"msgtype": "m.text", "body": data["body"]}
    event = server.send_server_notice(user.user_id, content, **actor(request))
    return f"Server notice {event.event_id} sent to {user.user_id}."


class DeactivateForm(forms.Form):
    erase = forms.BooleanField(
        required=False,
        label="Erase",
        help_text="Also clear the profile (display name, avatar) and the account data.",
    )
    confirm = forms.BooleanField(
        label="Yes: the account can never log in again, and leaves every room"
    )


class RateLimitForm(forms.Form):
    messages_per_second = forms.IntegerField(
        min_value=0, required=False, help_text="0: the user's messages are not rate-limited."
    )
    burst_count = forms.IntegerField(min_value=0, required=False)
    clear = forms.BooleanField(
        required=False, label="Clear the override (back to the server's limit)"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("clear"):
            for name in ("messages_per_second", "burst_count"):
                if data.get(name) is None:
                    self.add_error(name, "Give a number (or clear the override).")
        return data


class RedactEventsForm(forms.Form):
    rooms = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Room IDs, one a line; empty: every room the user was in.",
    )
    reason = forms.CharField(required=False, max_length=750)
    confirm = forms.BooleanField(label="Yes: redact the user's events (this cannot be undone)")


class ServerNoticeForm(forms.Form):
    body = forms.CharField(
        label="Message",
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=10000,
        help_text="Sent by the server to the user's server notices room.",
    )


class RemoveThreepidForm(forms.Form):
    """Which of the user's addresses to remove; the choices come with the initial data."""

    threepid = forms.ChoiceField(label="Address")

    def __init__(self, *args: Any, initial: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, initial=initial, **kwargs)
        field = self.fields["threepid"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = (initial or {}).get("choices", [])


def threepid_choices(user: User) -> dict[str, Any]:
    return {
        "choices": [
            (f"{t.medium}:{t.address}", f"{t.address} ({t.medium})")
            for t in user.threepids.order_by("medium", "address")
        ]
    }


class PasswordResetForm(forms.Form):
    new_password = forms.CharField(label="New password", strip=False, widget=forms.PasswordInput)
    new_password_again = forms.CharField(
        label="New password again", strip=False, widget=forms.PasswordInput
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "new_password" in data and data.get("new_password") != data.get("new_password_again"):
            raise forms.ValidationError("The two passwords differ.")
        return data


def _flag_actions(
    flag: str, field: str, on: str, off: str, help_on: str, *, danger: bool = False
) -> list[ObjectAction]:
    return [
        ObjectAction(
            flag,
            on,
            lambda request, user, data: set_flag(request, user, flag, True),
            help=help_on,
            danger=danger,
            shown=lambda user: user.is_active and not getattr(user, field),
        ),
        ObjectAction(
            f"un{flag}",
            off,
            lambda request, user, data: set_flag(request, user, flag, False),
            shown=lambda user: bool(getattr(user, field)),
        ),
    ]


USER_ACTIONS = [
    ObjectAction(
        "deactivate",
        "Deactivate…",
        lambda request, user, data: deactivate(request, user, data["erase"]),
        form=DeactivateForm,
        help="The account can never log in again: every device and session ends and the "
        "user leaves every room.",
        danger=True,
        shown=lambda user: user.is_active,
    ),
    *_flag_actions(
        "suspended",
        "is_suspended",
        "Suspend…",
        "Unsuspend…",
        "A suspended user may read, leave rooms and log out, but not join, invite, send "
        "or change their profile (M_USER_SUSPENDED).",
        danger=True,
    ),
    *_flag_actions(
        "locked",
        "is_locked",
        "Lock…",
        "Unlock…",
        "A locked account gets M_USER_LOCKED on every request but logout.",
        danger=True,
    ),
    *_flag_actions(
        "shadow_banned",
        "is_shadow_banned",
        "Shadow-ban…",
        "Lift the shadow-ban…",
        "The user's sends and invites seem to work but reach nobody.",
        danger=True,
    ),
    *_flag_actions(
        "admin",
        "is_staff",
        "Make server admin…",
        "Revoke server admin…",
        "A server admin may use the admin API and this portal.",
    ),
    ObjectAction(
        "logout",
        "Log out everywhere…",
        lambda request, user, data: log_out_everywhere(request, user),
        help="Every device and session of the user ends; clients must log in again.",
        shown=lambda user: user.is_active,
    ),
    ObjectAction(
        "ratelimit",
        "Rate limit…",
        override_ratelimit,
        form=RateLimitForm,
        help="Override the server's message rate limit for this user.",
        initial=lambda user: {
            "messages_per_second": user.ratelimit_messages_per_second or 0,
            "burst_count": user.ratelimit_burst_count or 0,
        },
    ),
    ObjectAction(
        "redact",
        "Redact all events…",
        redact_events,
        form=RedactEventsForm,
        help="A job redacts every event the user sent in these rooms; its progress is "
        "shown on this page and under Admin jobs.",
        danger=True,
    ),
    ObjectAction(
        "remove_threepid",
        "Remove an email or phone number…",
        remove_threepid,
        form=RemoveThreepidForm,
        help="The user can no longer log in or reset the password with the address.",
        initial=threepid_choices,
        shown=lambda user: user.threepids.exists(),
    ),
    ObjectAction(
        "notice",
        "Send a server notice…",
        send_notice,
        form=ServerNoticeForm,
        shown=lambda user: user.is_active,
    ),
]


# --- Pages ---------------------------------------------------------------------------


def _when(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%d %H:%M} UTC"


class DeviceInline(ReadOnlyInline):
    model = Device
    fields = ("device_id", "display_name", "last_seen_ip", "last_seen_ts", "created_at")
    readonly_fields = fields


class SessionInline(ReadOnlyInline):
    """Sessions show only which device and when: tokens are stored as digests."""

    model = AccessToken
    fields = ("device", "created_at", "expires_at_ms", "last_used_ms")
    readonly_fields = fields
    verbose_name_plural = "sessions"


@admin.register(User)
class UserAdmin(ObjectActionsAdmin):
    list_display = (
        "matrix_id",
        "display_name",
        "is_staff",
        "is_active",
        "is_suspended",
        "is_shadow_banned",
        "is_guest",
        "created_at",
    )
    list_filter = (
        ("is_staff", admin.BooleanFieldListFilter),
        ("is_active", admin.BooleanFieldListFilter),
        "is_suspended",
        "is_shadow_banned",
        "is_locked",
        "is_guest",
    )
    search_fields = ("localpart", "profile__displayname")
    fields = (
        "matrix_id",
        "display_name",
        "account_status",
        "server_admin",
        "moderation",
        "is_guest",
        "created_at",
        "last_login",
        "password_status",
        "third_party_ids",
        "joined_rooms",
        "uploaded_media",
        "jobs",
        "audit_log",
    )
    inlines = [DeviceInline, SessionInline]
    actions = ["deactivate", "log_out", "suspend", "unsuspend", "shadow_ban", "unshadow_ban"]
    object_actions = USER_ACTIONS
    ordering = ("localpart",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[User], search_term: str
    ) -> tuple[QuerySet[User], bool]:
        # A full user ID of this server is searched by its localpart.
        term = search_term.strip()
        if term.startswith("@") and ":" in term:
            term = term[1:].split(":", 1)[0]
        return super().get_search_results(request, queryset, term)

    @admin.display(description="Matrix ID", ordering="localpart")
    def matrix_id(self, obj: User) -> str:
        return obj.user_id

    @admin.display(description="display name")
    def display_name(self, obj: User) -> str:
        return obj.displayname or ""

    @admin.display(description="account")
    def account_status(self, obj: User) -> str:
        if not obj.is_active:
            when = f" {obj.deactivated_at:%Y-%m-%d %H:%M} UTC" if obj.deactivated_at else ""
            return f"Deactivated{when}: can never log in again"
        return "Active"

    @admin.display(description="moderation")
    def moderation(self, obj: User) -> str:
        states = [
            name
            for name, on in (
                ("suspended", obj.is_suspended),
                ("locked", obj.is_locked),
                ("shadow-banned", obj.is_shadow_banned),
                ("erased", obj.is_erased),
            )
            if on
        ]
        if obj.ratelimit_messages_per_second is not None:
            states.append(
                "message rate limit "
                + (
                    "off"
                    if obj.ratelimit_messages_per_second == 0
                    else f"{obj.ratelimit_messages_per_second}/s, "
                    f"bursts of {obj.ratelimit_burst_count}"
                )
            )
        return ", ".join(states) or "-"

    @admin.display(description="server admin")
    def server_admin(self, obj: User) -> str:
        if obj.is_superuser:
            return "Yes (superuser: every permission in the portal)"
        return "Yes (may use the admin API and the portal)" if obj.is_staff else "No"

    @admin.display(description="Password")
    def password_status(self, obj: User) -> str:
        # Never the hash itself (salt and digest would let anyone who sees the page guess
        # at the password offline): only whether there is one.
        status = "Set" if obj.password and obj.has_usable_password() else "Not set"
        if not obj.is_active:
            return f"{status} (deactivated: cannot log in)"
        return format_html(
            '{} <a href="{}">Set a new password…</a>',
            status,
            reverse("admin:accounts_user_password", args=[obj.pk]),
        )

    @admin.display(description="joined rooms")
    @admin.display(description="emails and phone numbers")
    def third_party_ids(self, obj: User) -> SafeString:
        rows = [
            (t.medium, t.address, _when(t.validated_at_ms), _when(t.added_at_ms))
            for t in obj.threepids.order_by("medium", "address")
        ]
        return table(["medium", "address", "validated", "added"], rows)

    def joined_rooms(self, obj: User) -> SafeString:
        rows = (
            Membership.objects.filter(user_id=obj.user_id, membership="join")
            .select_related("room")
            .order_by("room__room_id")
        )
        return table(
            ["room"],
            (
                (link(reverse("admin:rooms_room_change", args=[row.room.pk]), row.room.room_id),)
                for row in rows
            ),
        )

    @admin.display(description="admin jobs")
    def jobs(self, obj: Any) -> SafeString:
        return job_table(AdminJob.objects.filter(target=obj.user_id).order_by("-created_at"))

    @admin.display(description="audit log")
    def audit_log(self, obj: Any) -> SafeString:
        url = (
            reverse("admin:operators_auditentry_changelist") + "?" + urlencode({"q": obj.user_id})
        )
        return link(url, "what operators did to it")

    @admin.display(description="media")
    def uploaded_media(self, obj: User) -> SafeString:
        totals = LocalMedia.objects.filter(user_id=obj.user_id).aggregate(
            n=Count("pk"),
            size=Sum("size"),
            quarantined=Count("pk", filter=Q(quarantined_by__isnull=False)),
        )
        url = reverse("admin:media_localmedia_changelist") + f"?user_id={obj.user_id}"
        return format_html(
            '<a href="{}">{} item(s), {}</a>; {} quarantined',
            url,
            totals["n"],
            filesizeformat(totals["size"] or 0),
            totals["quarantined"],
        )

    # --- Actions on the list ----------------------------------------------------------

    @admin.action(description="Deactivate selected users (logs out all their devices)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        run_bulk(
            self,
            request,
            queryset.filter(is_active=True),
            lambda user: deactivate(request, user, erase=False),
            "Deactivated user(s)",
        )

    @admin.action(description="Log the selected users out everywhere")
    def log_out(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        run_bulk(
            self,
            request,
            queryset,
            lambda user: log_out_everywhere(request, user),
            "Logged out user(s)",
        )

    def _flag_bulk(
        self, request: HttpRequest, queryset: QuerySet[User], flag: str, value: bool
    ) -> None:
        run_bulk(
            self,
            request,
            queryset.filter(is_active=True),
            lambda user: set_flag(request, user, flag, value),
            f"{FLAGS[flag][1 if value else 2].capitalize()}",
        )

    @admin.action(description="Suspend the selected users")
    def suspend(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._flag_bulk(request, queryset, "suspended", True)

    @admin.action(description="Unsuspend the selected users")
    def unsuspend(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._flag_bulk(request, queryset, "suspended", False)

    @admin.action(description="Shadow-ban the selected users")
    def shadow_ban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._flag_bulk(request, queryset, "shadow_banned", True)

    @admin.action(description="Lift the shadow-ban of the selected users")
    def unshadow_ban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._flag_bulk(request, queryset, "shadow_banned", False)

    # --- Setting a new password -------------------------------------------------------

    def extra_buttons(self, obj: User) -> list[dict[str, Any]]:
        if not obj.is_active:
            return []
        url = reverse("admin:accounts_user_password", args=[obj.pk])
        return [{"url": url, "label": "Reset password…", "danger": False}]

    def extra_urls(self) -> list[URLPattern]:
        reset = path(
            "<path:object_id>/password/",
            self.admin_site.admin_view(self.password_view),
            name="accounts_user_password",
        )
        return [reset]

    def password_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Set a user's password, as POST /account/password with logout_devices: every
        device and session of the user ends."""
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such user")
        if not self.can_act(request):
            raise PermissionDenied
        change_page = reverse("admin:accounts_user_change", args=[user.pk])
        if not user.is_active:
            self.message_user(
                request,
                f"{user.user_id} is deactivated: it can never log in again.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_page)
        form = PasswordResetForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                message = reset_password(
                    request, user, form.cleaned_data["new_password"], logout=True
                )
            except MatrixError as error:
                form.add_error("new_password", error.error)
            else:
                if user.pk == request.user.pk:
                    # The operator's own portal session survives the change.
                    user.refresh_from_db(fields=["password"])
                    update_session_auth_hash(request, user)
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(change_page)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Set a new password for {user.user_id}",
            "form": form,
            "opts": self.model._meta,
            "original": user,
        }
        return TemplateResponse(request, "admin/accounts/user/password.html", context)


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ("device_id", "user", "display_name", "last_seen_ip", "last_seen_ts")
    search_fields = ("device_id", "user__localpart", "display_name")
    fields = ("user", "device_id", "display_name", "last_seen_ip", "last_seen_ts", "created_at")
    readonly_fields = fields


@admin.register(AccessToken)
class SessionAdmin(ReadOnlyAdmin):
    """Sessions show only who and when: tokens are stored as digests and never shown."""

    list_display = ("user", "device", "created_at", "expires_at_ms", "has_refresh_token")
    search_fields = ("user__localpart", "device__device_id")
    fields = ("user", "device", "created_at", "expires_at_ms")
    readonly_fields = fields

    @admin.display(boolean=True, description="refresh token")
    def has_refresh_token(self, obj: AccessToken) -> bool:
        return obj.refresh_token_hash is not None


@admin.register(AccountData)
class AccountDataAdmin(ReadOnlyAdmin):
    list_display = ("user", "room_id", "type", "updated_at")
    search_fields = ("user__localpart", "type", "room_id")
    fields = ("user", "room_id", "type", "content", "updated_at", "stream_id")
    readonly_fields = fields


class TokenForm(forms.Form):
    uses_allowed = forms.IntegerField(
        min_value=0, required=False, help_text="Empty: any number of registrations."
    )
    expiry = forms.DateTimeField(
        required=False,
        help_text="UTC, e.g. 2030-01-31 18:00; empty: never expires.",
    )


class NewTokenForm(TokenForm):
    token = forms.CharField(
        required=False,
        max_length=64,
        help_text="Empty: a random token of 16 characters.",
    )


def _expiry_initial(row: RegistrationToken) -> dict[str, Any]:
    expiry = (
        datetime.fromtimestamp(row.expiry_time_ms / 1000, tz=UTC)
        if row.expiry_time_ms is not None
        else None
    )
    return {"uses_allowed": row.uses_allowed, "expiry": expiry}


def _token_changes(data: dict[str, Any]) -> dict[str, Any]:
    expiry = data["expiry"]
    return {
        "uses_allowed": data["uses_allowed"],
        "expiry_time": int(expiry.timestamp() * 1000) if expiry else None,
    }


def create_token(request: HttpRequest, _: None, data: dict[str, Any]) -> str:
    row = users.create_registration_token(
        data["token"] or None, **_token_changes(data), **actor(request)
    )
    return f"Registration token {row.token} created."


def update_token(request: HttpRequest, row: RegistrationToken, data: dict[str, Any]) -> str:
    users.update_registration_token(row.token, _token_changes(data), **actor(request))
    return f"Registration token {row.token} changed."


def delete_token(request: HttpRequest, row: RegistrationToken, data: dict[str, Any]) -> str:
    users.delete_registration_token(row.token, **actor(request))
    return f"Registration token {row.token} deleted."


@admin.register(RegistrationToken)
class RegistrationTokenAdmin(ObjectActionsAdmin):
    """Tokens that let someone register when TRELLIS_REGISTRATION=token."""

    list_display = ("token", "uses_allowed", "pending", "completed", "expires")
    fields = ("token", "uses_allowed", "pending", "completed", "expires", "created_at")
    search_fields = ("token",)
    list_actions = [ObjectAction("new", "New token…", create_token, form=NewTokenForm)]
    object_actions = [
        ObjectAction(
            "edit",
            "Change uses or expiry…",
            update_token,
            form=TokenForm,
            initial=_expiry_initial,
        ),
        ObjectAction("delete", "Delete…", delete_token, danger=True),
    ]

    @admin.display(description="expires", ordering="expiry_time_ms")
    def expires(self, obj: RegistrationToken) -> str:
        if obj.expiry_time_ms is None:
            return "never"
        return f"{datetime.fromtimestamp(obj.expiry_time_ms / 1000, tz=UTC):%Y-%m-%d %H:%M} UTC"
