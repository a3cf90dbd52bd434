"""The operator's view of accounts: users, devices, sessions, registration tokens.

Accounts are changed only through operator actions (the buttons on a user's page, with a
confirmation form, and the actions of the user list), each calling an operator action
function with ``via="portal"`` and the operator as actor, which writes the audit entry.
Devices, sessions and account data are the users' own: read-only here.

A user's password hash is never shown: the page says whether a password is set, and the
"Reset password" form sets a new one (and logs the user out everywhere).
"""

from __future__ import annotations

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
from accounts.services.deactivation import do_deactivate_account
from accounts.services.passwords import do_change_password
from accounts.services.sessions import do_logout_all
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
from operators.services import audit
from protocol.errors import MatrixError
from rooms.models import Membership

# --- The operator actions on an account ----------------------------------------------


def deactivate(request: HttpRequest, user: User, erase: bool) -> str:
    who = actor(request)
    with transaction.atomic():
        do_deactivate_account(user, erase=erase)
        audit.record(
            who["actor"], "user.deactivate", user.user_id, via="portal", ip=who["ip"], erase=erase
        )
        log_operator_action(
            request, [user], "Deactivated the account and logged out all its devices."
        )
    return f"Deactivated {user.user_id}" + (" and erased its profile." if erase else ".")


def log_out_everywhere(request: HttpRequest, user: User) -> str:
    who = actor(request)
    with transaction.atomic():
        devices = user.devices.count()
        do_logout_all(user)
        audit.record(
            who["actor"],
            "user.logout_all",
            user.user_id,
            via="portal",
            ip=who["ip"],
            devices=devices,
        )
        log_operator_action(request, [user], f"Logged out all {devices} device(s).")
    return f"Logged {user.user_id} out of {devices} device(s)."


def reset_password(request: HttpRequest, user: User, password: str, logout: bool) -> str:
    who = actor(request)
    with transaction.atomic():
        devices = user.devices.count()
        do_change_password(user, password, logout_devices=logout, keep=None)
        audit.record(
            who["actor"],
            "user.reset_password",
            user.user_id,
            via="portal",
            ip=who["ip"],
            logout_devices=logout,
        )
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


class DeactivateForm(forms.Form):
    erase = forms.BooleanField(
        required=False,
        label="Erase",
        help_text="Also clear the profile (display name, avatar) and the account data.",
    )
    confirm = forms.BooleanField(
        label="Yes: the account can never log in again, and leaves every room"
    )


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
    ObjectAction(
        "logout",
        "Log out everywhere…",
        lambda request, user, data: log_out_everywhere(request, user),
        help="Every device and session of the user ends; clients must log in again.",
        shown=lambda user: user.is_active,
    ),
]


# --- Pages ---------------------------------------------------------------------------


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
        "is_guest",
        "created_at",
    )
    list_filter = (
        ("is_staff", admin.BooleanFieldListFilter),
        ("is_active", admin.BooleanFieldListFilter),
        "is_guest",
    )
    search_fields = ("localpart", "profile__displayname")
    fields = (
        "matrix_id",
        "display_name",
        "account_status",
        "server_admin",
        "is_guest",
        "created_at",
        "last_login",
        "password_status",
        "joined_rooms",
        "uploaded_media",
        "jobs",
        "audit_log",
    )
    inlines = [DeviceInline, SessionInline]
    actions = ["deactivate", "log_out"]
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

    # --- Setting a new password -------------------------------------------------------

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


@admin.register(RegistrationToken)
class RegistrationTokenAdmin(ReadOnlyAdmin):
    list_display = ("token", "uses_allowed", "pending", "completed", "expiry_time_ms")
    fields = ("token", "uses_allowed", "pending", "completed", "expiry_time_ms", "created_at")
    readonly_fields = fields
