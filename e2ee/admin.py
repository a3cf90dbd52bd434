"""The operator's view of pending send-to-device messages (read-only: they are the
devices' business; deleting one only means it is never delivered)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from e2ee.models import ToDeviceMessage


@admin.register(ToDeviceMessage)
class ToDeviceMessageAdmin(admin.ModelAdmin):
    list_display = ("type", "sender", "user_id", "device_id", "stream_id")
    list_filter = ("type",)
    search_fields = ("user_id", "sender", "device_id")
    # Encrypted payloads or key material: the content is not shown.
    fields = ("type", "sender", "user_id", "device_id", "stream_id", "message_id")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ToDeviceMessage | None = None
    ) -> bool:
        return False
