"""The operator's view of presence (read-only: users set it from their clients)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from presence.models import Presence


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ("user_id", "state", "status_msg", "last_active_ts")
    list_filter = ("state",)
    search_fields = ("user_id",)
    readonly_fields = ("user_id", "state", "status_msg", "last_active_ts", "stream_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
