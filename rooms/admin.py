"""The operator's view of rooms: rooms, their members, events, aliases and reports."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.admin import log_operator_action
from rooms.models import (
    Event,
    EventReport,
    Membership,
    Receipt,
    Room,
    RoomAlias,
    RoomStateChange,
    Typing,
)
from rooms.services import reports


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user_id", "membership", "event_id")
    readonly_fields = fields
    can_delete = False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("room_id", "room_version", "creator", "is_public", "created_at")
    list_filter = ("is_public", "room_version")
    search_fields = ("room_id", "creator", "aliases__alias")
    readonly_fields = (
        "room_id",
        "room_version",
        "creator",
        "created_at",
        "current_state_group",
        "state_changes",
        "rejected_events",
    )
    inlines = [MembershipInline]

    @admin.display(description="state changes")
    def state_changes(self, obj: Room) -> str:
        url = reverse("admin:rooms_roomstatechange_changelist")
        return format_html(
            '<a href="{}?{}">the changes of its current state</a>',
            url,
            urlencode({"room__id__exact": obj.pk}),
        )

    @admin.display(description="rejected and soft-failed events")
    def rejected_events(self, obj: Room) -> str:
        url = reverse("admin:rooms_event_changelist")
        return format_html(
            '<a href="{}?{}">rejected</a>, <a href="{}?{}">soft-failed</a>',
            url,
            urlencode({"room__id__exact": obj.pk, "pipeline": "rejected"}),
            url,
            urlencode({"room__id__exact": obj.pk, "pipeline": "soft_failed"}),
        )


class PipelineFilter(admin.SimpleListFilter):
    """What the event pipeline made of an event (rooms.services.incoming)."""

    title = "pipeline result"
    parameter_name = "pipeline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("rejected", "rejected"),
            ("soft_failed", "soft-failed"),
            ("outlier", "outlier"),
            ("accepted", "in the timeline"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value() == "rejected":
            return queryset.filter(rejected_reason__isnull=False)
        if self.value() == "soft_failed":
            return queryset.filter(soft_failed=True)
        if self.value() == "outlier":
            return queryset.filter(outlier=True)
        if self.value() == "accepted":
            return queryset.filter(rejected_reason__isnull=True, soft_failed=False, outlier=False)
        return queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events, read-only: filter by what the pipeline made of them (rejected, with the
    reason; soft-failed; outliers) to see what other servers sent that was refused."""

    list_display = (
        "event_id",
        "room",
        "type",
        "sender",
        "stream_ordering",
        "rejected_reason",
        "soft_failed",
        "redacted_by",
    )
    list_filter = (PipelineFilter, "type")
    search_fields = ("event_id", "sender", "room__room_id", "rejected_reason")
    readonly_fields = [f.name for f in Event._meta.fields]
    list_select_related = ("room",)

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An event is part of the room's graph: removing one would break it.
        return False


@admin.register(RoomStateChange)
class RoomStateChangeAdmin(admin.ModelAdmin):
    """The changes of rooms' current state (per room from the room's page), read-only;
    ``resolved``: the state of forked extremities was resolved there."""

    list_display = ("room", "stream_ordering", "state_group", "resolved")
    list_filter = ("resolved",)
    search_fields = ("room__room_id",)
    ordering = ("room", "-stream_ordering")
    list_select_related = ("room",)
    readonly_fields = [f.name for f in RoomStateChange._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RoomAlias)
class RoomAliasAdmin(admin.ModelAdmin):
    list_display = ("alias", "room", "creator", "created_at")
    search_fields = ("alias", "room__room_id")


@admin.register(EventReport)
class EventReportAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "reporter",
        "room_id",
        "event_id",
        "user_id",
        "score",
        "resolved",
    )
    list_filter = ("resolved",)
    search_fields = ("reporter", "room_id", "event_id", "user_id", "reason")
    actions = ["resolve"]

    @admin.action(description="Mark the selected reports as resolved")
    def resolve(self, request: HttpRequest, queryset: QuerySet[EventReport]) -> None:
        with transaction.atomic():
            targets = list(queryset.filter(resolved=False))
            count = reports.do_resolve_reports([report.pk for report in targets])
            log_operator_action(request, targets, "Marked resolved.")
        self.message_user(request, f"{count} report(s) resolved.")


@admin.register(Typing)
class TypingAdmin(admin.ModelAdmin):
    list_display = ("room", "user_id", "expires_at_ms", "stream_id")
    search_fields = ("room__room_id", "user_id")
    readonly_fields = [f.name for f in Typing._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    list_display = ("room", "user_id", "receipt_type", "thread_id", "event_id", "ts")
    list_filter = ("receipt_type",)
    search_fields = ("room__room_id", "user_id", "event_id")
    readonly_fields = [f.name for f in Receipt._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
