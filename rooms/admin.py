"""The operator's view of rooms: rooms, their members, events, aliases and reports."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin import log_operator_action
from rooms.models import Event, EventReport, Membership, Receipt, Room, RoomAlias, Typing
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
    readonly_fields = ("room_id", "room_version", "creator", "created_at", "current_state_group")
    inlines = [MembershipInline]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "room", "type", "sender", "stream_ordering", "redacted_by")
    list_filter = ("type",)
    search_fields = ("event_id", "sender", "room__room_id")
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: object) -> bool:
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
