"""The operator's view of key backups (read-only: the keys are the user's, encrypted for
the user; the admin shows which backups exist, never a key)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from config.portal import ReadOnlyAdmin
from keybackup.models import BackupVersion


@admin.register(BackupVersion)
class BackupVersionAdmin(ReadOnlyAdmin):
    list_display = ("user", "version", "algorithm", "key_count", "etag", "deleted", "created_at")
    list_filter = ("deleted", "algorithm")
    search_fields = ("user__localpart",)
    ordering = ("user__localpart", "-version")
    fields = ("user", "version", "algorithm", "key_count", "etag", "deleted", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BackupVersion]:
        return (
            super().get_queryset(request).select_related("user").annotate(_keys=Count("sessions"))
        )

    @admin.display(description="keys", ordering="_keys")
    def key_count(self, obj: BackupVersion) -> int:
        return int(getattr(obj, "_keys", 0))
