"""The operator's view of accounts: users, devices, sessions, registration tokens.

A user's password hash is never shown: the change page says whether a password is set
and links to a form that sets a new one (and logs the user out everywhere). Every
operator action is written to the audit log (config/admin.py).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.models import AccessToken, AccountData, Device, RegistrationToken, User
from accounts.services.deactivation import do_deactivate_account
from accounts.services.passwords import do_change_password
from config.admin import log_operator_action
from protocol.errors import MatrixError


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


class DeviceInline(admin.TabularInline):
    model = Device
    extra = 0
    fields = ("device_id", "display_name", "last_seen_ip", "last_seen_ts")
    readonly_fields = fields
    can_delete = True


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("localpart", "matrix_id", "is_active", "is_staff", "created_at")
    list_filter = ("is_active", "is_staff", "is_superuser")
    search_fields = ("localpart",)
    # Never the password hash itself (salt and digest would let anyone who sees the
    # page guess at the password offline): only whether there is one.
    readonly_fields = (
        "matrix_id",
        "created_at",
        "deactivated_at",
        "last_login",
        "password_status",
    )
    fields = (
        "matrix_id",
        "localpart",
        "profile",
        "is_active",
        "is_staff",
        "is_superuser",
        "created_at",
        "deactivated_at",
        "last_login",
        "password_status",
    )
    inlines = [DeviceInline]
    actions = ["deactivate"]

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Accounts are deactivated, never deleted: a deleted row frees its user ID for
        # anyone to register, who would then be taken for the old user in rooms and by
        # other servers; and it would take the audit log of what the user did as an
        # operator with it (LogEntry.user cascades).
        return False

    @admin.display(description="Matrix ID")
    def matrix_id(self, obj: User) -> str:
        return obj.user_id

    @admin.display(description="Password")
    def password_status(self, obj: User) -> str:
        if obj.pk is None:
            return "-"
        status = "Set" if obj.password and obj.has_usable_password() else "Not set"
        if not obj.is_active:
            return f"{status} (deactivated: cannot log in)"
        return format_html(
            '{} <a href="{}">Set a new password…</a>',
            status,
            reverse("admin:accounts_user_password", args=[obj.pk]),
        )

    @admin.action(description="Deactivate selected users (logs out all their devices)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = 0
        for user in queryset.filter(is_active=True):
            with transaction.atomic():
                do_deactivate_account(user)
                log_operator_action(
                    request, [user], "Deactivated the account and logged out all its devices."
                )
            count += 1
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        # Unticking "active" in the form is a deactivation: it goes through the service so
        # that the user's devices and sessions are removed too.
        was_active = change and User.objects.filter(pk=obj.pk, is_active=True).exists()
        if was_active and not obj.is_active:
            obj.is_active = True
            super().save_model(request, obj, form, change)
            do_deactivate_account(obj)
            log_operator_action(
                request, [obj], "Deactivated the account and logged out all its devices."
            )
            return
        super().save_model(request, obj, form, change)

    # --- Setting a new password -------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        reset = path(
            "<path:object_id>/password/",
            self.admin_site.admin_view(self.password_view),
            name="accounts_user_password",
        )
        return [reset, *super().get_urls()]

    def password_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Set a user's password, as POST /account/password with logout_devices: every
        device and session of the user ends."""
        user = self.get_object(request, object_id)
        if user is None:
            raise Http404("No such user")
        if not self.has_change_permission(request, user):
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
            devices = user.devices.count()
            try:
                with transaction.atomic():
                    do_change_password(
                        user, form.cleaned_data["new_password"], logout_devices=True, keep=None
                    )
                    log_operator_action(
                        request,
                        [user],
                        f"Set a new password; logged out all {devices} device(s).",
                    )
            except MatrixError as error:
                form.add_error("new_password", error.error)
            else:
                if user.pk == request.user.pk:
                    # The operator's own portal session survives the change.
                    update_session_auth_hash(request, user)
                self.message_user(
                    request,
                    f"Set a new password for {user.user_id} and logged out its {devices} "
                    "device(s).",
                    messages.SUCCESS,
                )
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
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("device_id", "user", "display_name", "last_seen_ip", "last_seen_ts")
    search_fields = ("device_id", "user__localpart", "display_name")
    readonly_fields = ("user", "device_id", "last_seen_ip", "last_seen_ts", "created_at")


@admin.register(AccessToken)
class SessionAdmin(admin.ModelAdmin):
    """Sessions show only who and when: tokens are stored as digests and never shown."""

    list_display = ("user", "device", "created_at", "expires_at_ms", "has_refresh_token")
    search_fields = ("user__localpart", "device__device_id")
    fields = ("user", "device", "created_at", "expires_at_ms")
    readonly_fields = fields

    @admin.display(boolean=True, description="refresh token")
    def has_refresh_token(self, obj: AccessToken) -> bool:
        return obj.refresh_token_hash is not None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AccountData)
class AccountDataAdmin(admin.ModelAdmin):
    list_display = ("user", "room_id", "type", "updated_at")
    search_fields = ("user__localpart", "type", "room_id")


@admin.register(RegistrationToken)
class RegistrationTokenAdmin(admin.ModelAdmin):
    list_display = ("token", "uses_allowed", "pending", "completed", "expiry_time_ms")
    readonly_fields = ("pending", "completed", "created_at")
