"""The operator's view of accounts: users, devices, sessions, registration tokens."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import AccessToken, AccountData, Device, RegistrationToken, User
from accounts.services.deactivation import do_deactivate_account


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
    readonly_fields = ("matrix_id", "created_at", "deactivated_at", "last_login", "password")
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
        "password",
    )
    inlines = [DeviceInline]
    actions = ["deactivate"]

    @admin.display(description="Matrix ID")
    def matrix_id(self, obj: User) -> str:
        return obj.user_id

    @admin.action(description="Deactivate selected users (logs out all their devices)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = 0
        for user in queryset.filter(is_active=True):
            do_deactivate_account(user)
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
            return
        super().save_model(request, obj, form, change)


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
