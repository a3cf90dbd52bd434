"""The operator's view of pushers: who gets push notifications where, and how delivery
goes (read-only: pushers are the users' own settings, changed through their clients)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from config.portal import ReadOnlyAdmin
from push.models import Pusher


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class FailingFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        return [("failing", "failing"), ("ok", "working")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Pusher]) -> QuerySet[Pusher]:
        if self.value() == "failing":
            return queryset.filter(failing_since_ts__isnull=False)
        if self.value() == "ok":
            return queryset.filter(failing_since_ts__isnull=True)
        return queryset


@admin.register(Pusher)
class PusherAdmin(ReadOnlyAdmin):
    list_display = (
        "user_id",
        "app_display_name",
        "device_display_name",
        "app_id",
        "kind",
        "gateway",
        "last_success",
        "failing_since",
    )
    list_filter = ("kind", FailingFilter, "app_id")
    # Filter by user: the search box, or ?user_id=@alice:example.org in the address.
    search_fields = ("user_id", "app_id", "app_display_name", "device_display_name")
    ordering = ("user_id", "app_id")
    fields = (
        "user_id",
        "device_id",
        "kind",
        "app_id",
        "pushkey",
        "app_display_name",
        "device_display_name",
        "profile_tag",
        "lang",
        "data",
        "set_at",
        "last_stream_ordering",
        "last_success",
        "failing_since",
        "next_retry",
    )
    readonly_fields = fields

    @admin.display(description="gateway")
    def gateway(self, obj: Pusher) -> str:
        return str(obj.data.get("url", ""))

    @admin.display(description="set at", ordering="created_ts")
    def set_at(self, obj: Pusher) -> str:
        return _when(obj.created_ts)

    @admin.display(description="last delivered", ordering="last_success_ts")
    def last_success(self, obj: Pusher) -> str:
        return _when(obj.last_success_ts)

    @admin.display(description="failing since", ordering="failing_since_ts")
    def failing_since(self, obj: Pusher) -> str:
        return _when(obj.failing_since_ts)

    @admin.display(description="next retry")
    def next_retry(self, obj: Pusher) -> str:
        return _when(obj.retry_at_ts)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "user_id" or super().lookup_allowed(lookup, value, request)
