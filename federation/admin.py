import datetime
from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from config.admin import log_operator_action
from federation import outbound
from federation.models import Destination, OutboundEDU, OutboundPDU, RemoteServerKey


@admin.register(RemoteServerKey)
class RemoteServerKeyAdmin(admin.ModelAdmin):
    """Other servers' keys as fetched and checked: read-only. Deleting one makes Trellis
    fetch it again when it next needs it."""

    list_display = ["server_name", "key_id", "valid_until_ts", "expired_ts", "fetched_from"]
    search_fields = ["server_name"]
    readonly_fields = [f.name for f in RemoteServerKey._meta.fields]

    def has_add_permission(self, request: Any) -> bool:
        return False


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    """The servers Trellis sends transactions to: how much waits for each, how sending
    goes (backoff, last success, last error), and "retry now" to end a backoff."""

    list_display = [
        "server_name",
        "queued_pdus",
        "queued_edus",
        "failures",
        "backoff",
        "last_success",
        "last_error",
    ]
    search_fields = ["server_name"]
    readonly_fields = [f.name for f in Destination._meta.fields]
    actions = ["retry_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Destination]:
        def depth(model: type[OutboundPDU] | type[OutboundEDU]) -> Subquery:
            rows = model.objects.filter(destination=OuterRef("pk")).order_by()
            return Subquery(
                rows.values("destination").annotate(n=Count("id")).values("n")[:1],
                output_field=IntegerField(),
            )

        return (
            super()
            .get_queryset(request)
            .annotate(
                pdu_depth=Coalesce(depth(OutboundPDU), 0),
                edu_depth=Coalesce(depth(OutboundEDU), 0),
            )
        )

    @admin.display(description="queued PDUs", ordering="pdu_depth")
    def queued_pdus(self, obj: Any) -> int:
        return int(obj.pdu_depth)

    @admin.display(description="queued EDUs", ordering="edu_depth")
    def queued_edus(self, obj: Any) -> int:
        return int(obj.edu_depth)

    @admin.display(description="backoff")
    def backoff(self, obj: Destination) -> str:
        if obj.retry_at_ts is None:
            return ""
        return f"{obj.retry_delay_ms // 1000} s, next attempt {_when(obj.retry_at_ts)}"

    @admin.display(description="last success", ordering="last_success_ts")
    def last_success(self, obj: Destination) -> str:
        return _when(obj.last_success_ts) if obj.last_success_ts is not None else ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected destinations now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        with transaction.atomic():
            targets = list(queryset)
            count = outbound.do_retry_now([d.server_name for d in targets])
            log_operator_action(request, targets, "Retried now (backoff ended).")
        self.message_user(request, f"{count} destination(s) retried.")
