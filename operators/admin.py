"""The operators' own records in the portal: the audit log and the admin jobs, read-only.

Every operator action, from the portal or the /_synapse/admin API, is an
:class:`AuditEntry`; long actions (a room deletion, redacting a user's events) are
:class:`AdminJob` s whose progress the worker reports as it goes.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString

from config.portal import ReadOnlyAdmin, pretty_json, progress_bar
from operators.models import AdminJob, AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Who did what to which target, newest first; entries are only ever added."""

    date_hierarchy = "created_at"
    list_display = ("created_at", "actor", "action", "target", "via", "ip", "summary")
    list_filter = ("action", "via", "actor")
    search_fields = ("target", "actor")
    fields = ("created_at", "actor", "action", "target", "via", "ip", "details_json")
    readonly_fields = fields

    @admin.display(description="details")
    def summary(self, obj: AuditEntry) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted(obj.details.items()))[:120]

    @admin.display(description="details")
    def details_json(self, obj: AuditEntry) -> SafeString:
        return pretty_json(obj.details)


@admin.register(AdminJob)
class AdminJobAdmin(ReadOnlyAdmin):
    """Long operator actions run by the worker, with the progress they report."""

    list_display = ("created_at", "kind", "target", "actor", "status", "progress_shown")
    list_filter = ("status", "kind")
    search_fields = ("target", "actor", "job_id")
    fields = (
        "job_id",
        "kind",
        "target",
        "actor",
        "status",
        "progress_shown",
        "params_json",
        "progress_json",
        "error",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="progress")
    def progress_shown(self, obj: AdminJob) -> SafeString:
        return progress_bar(obj)

    @admin.display(description="parameters")
    def params_json(self, obj: AdminJob) -> SafeString:
        return pretty_json(obj.params)

    @admin.display(description="progress (all)")
    def progress_json(self, obj: AdminJob) -> SafeString:
        return pretty_json(obj.progress)
