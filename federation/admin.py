from django.contrib import admin

from federation.models import RemoteServerKey


@admin.register(RemoteServerKey)
class RemoteServerKeyAdmin(admin.ModelAdmin):
    list_display = ["server_name", "key_id", "valid_until_ts", "expired_ts", "fetched_from"]
    search_fields = ["server_name"]
    readonly_fields = [f.name for f in RemoteServerKey._meta.fields]
