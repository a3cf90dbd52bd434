"""The audit log of the admin portal: who did what to which object, and when.

Django writes a LogEntry for every add, change and delete through its own forms and its
bulk delete. Every other operator action (the admin actions and the custom views of
each app's admin.py) writes one with ``log_operator_action`` for each object it acts
on. The log is shown read-only: nobody can add, change or delete an entry in the portal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html


def log_operator_action(
    request: HttpRequest, objects: Iterable[Model], message: str, *, deletion: bool = False
) -> int:
    """Record that the logged-in operator did ``message`` to each of ``objects``; for a
    deletion, pass the objects as loaded before they were deleted. Returns how many
    entries were written."""
    targets = list(objects)
    if not targets:
        return 0
    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=targets,
        action_flag=DELETION if deletion else CHANGE,
        change_message=message,
        single_object=len(targets) == 1,
    )
    return len(targets)


@admin.register(LogEntry)
class LogEntryAdmin(admin.ModelAdmin):
    """Operator actions, newest first: readable, never editable."""

    date_hierarchy = "action_time"
    list_display = ("action_time", "user", "action", "content_type", "target", "message")
    # No filter by user: it would list every account of the server.
    list_filter = ("action_flag", "content_type")
    search_fields = ("object_repr", "object_id", "change_message", "user__localpart")
    fields = (
        "action_time",
        "user",
        "action",
        "content_type",
        "object_id",
        "target",
        "message",
    )
    readonly_fields = fields
    ordering = ("-action_time", "-id")
    list_select_related = ("user", "content_type")

    @admin.display(description="action", ordering="action_flag")
    def action(self, obj: LogEntry) -> str:
        return str(obj.get_action_flag_display())

    @admin.display(description="target", ordering="object_repr")
    def target(self, obj: LogEntry) -> str:
        if obj.is_deletion():
            return obj.object_repr
        url = obj.get_admin_url()
        if not url:
            return obj.object_repr
        return format_html('<a href="{}">{}</a>', url, obj.object_repr)

    @admin.display(description="what")
    def message(self, obj: LogEntry) -> str:
        return str(obj.get_change_message())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
