"""The operator's view of presence (read-only: users set it from their clients)."""

from __future__ import annotations

from django.contrib import admin

from config.portal import ReadOnlyAdmin
from presence.models import Presence


@admin.register(Presence)
class PresenceAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "state", "status_msg", "last_active_ts")
    list_filter = ("state",)
    search_fields = ("user_id",)
    readonly_fields = ("user_id", "state", "status_msg", "last_active_ts", "stream_id")
