"""The operators' own records in the portal: the audit log and the admin jobs, read-only.

Every operator action, from the portal or the /_synapse/admin API, is an
:class:`AuditEntry`; long actions (a room deletion, redacting a user's events) are
:class:`AdminJob` s whose progress the worker reports as it goes.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.portal import ReadOnlyAdmin, pretty_json
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


def progress_bar(job: AdminJob) -> SafeString:
    """The job's progress: done/total when it reports both, else what it reported."""
    progress: dict[str, Any] = job.progress or {}
    done, total = progress.get("done"), progress.get("total")
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        percent = min(100, done * 100 // total)
        return format_html(
            '<span class="trellis-progress" title="{}%"><span style="width: {}%"></span></span>'
            " {} / {}",
            percent,
            percent,
            done,
            total,
        )
    scalars = {k: v for k, v in progress.items() if isinstance(v, int | str)}
    return format_html("{}", ", ".join(f"{k}: {v}" for k, v in sorted(scalars.items())) or "-")


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
