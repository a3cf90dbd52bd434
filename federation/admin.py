from typing import Any

from django.contrib import admin

from federation.models import RemoteServerKey


@admin.register(RemoteServerKey)
class RemoteServerKeyAdmin(admin.ModelAdmin):
    """Other servers' keys as fetched and checked: read-only. Deleting one makes Trellis
    fetch it again when it next needs it."""

    list_display = ["server_name", "key_id", "valid_until_ts", "expired_ts", "fetched_from"]
    search_fields = ["server_name"]
    readonly_fields = [f.name for f in RemoteServerKey._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False
