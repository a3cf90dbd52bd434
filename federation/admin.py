import datetime
from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from config.admin import log_operator_action
from config.portal import ReadOnlyAdmin, actor, run_bulk
from federation.models import (
    Destination,
    InboundPdu,
    InboundTransaction,
    OutboundEDU,
    OutboundPDU,
    RemoteServerKey,
)
from operators.services import server


@admin.register(RemoteServerKey)
class RemoteServerKeyAdmin(ReadOnlyAdmin):
    """Other servers' keys as fetched and checked: read-only."""

    list_display = ["server_name", "key_id", "valid_until_ts", "expired_ts", "fetched_from"]
    search_fields = ["server_name"]
    readonly_fields = [f.name for f in RemoteServerKey._meta.fields]


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@admin.register(Destination)
class DestinationAdmin(ReadOnlyAdmin):
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

    @admin.action(description="Retry the selected destinations now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        def retry(destination: Destination) -> None:
            with transaction.atomic():
                server.reset_destination(destination.server_name, **actor(request))
                log_operator_action(request, [destination], "Retried now (backoff ended).")

        run_bulk(self, request, queryset, retry, "Destination(s) retried")


class InboundPduInline(admin.TabularInline):
    """Each PDU of a transaction and what became of it."""

    model = InboundPdu
    fields = ("event_id", "room_id", "outcome", "processed")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="result")
    def outcome(self, obj: InboundPdu) -> str:
        if obj.result is None:
            return "pending"
        error = obj.result.get("error") if isinstance(obj.result, dict) else None
        return f"error: {error}" if error else "accepted"

    @admin.display(description="processed")
    def processed(self, obj: InboundPdu) -> str:
        return _when(obj.processed_ts) if obj.processed_ts is not None else ""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PduOutcomeFilter(admin.SimpleListFilter):
    title = "PDU results"
    parameter_name = "pdus"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("failed", "with failed PDUs"), ("pending", "with pending PDUs")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[InboundTransaction]
    ) -> QuerySet[InboundTransaction]:
        if self.value() == "failed":
            return queryset.filter(pdus__result__has_key="error").distinct()
        if self.value() == "pending":
            return queryset.filter(pdus__processed_ts__isnull=True).distinct()
        return queryset


@admin.register(InboundTransaction)
class InboundTransactionAdmin(ReadOnlyAdmin):
    """Transactions other servers sent (PUT /send): who, when, how many PDUs and EDUs,
    and each PDU's result. Read-only: they are the record of what was received."""

    list_display = ["origin", "txn_id", "received", "pdu_count", "failed_pdus", "edu_count"]
    list_filter = [PduOutcomeFilter]
    search_fields = ["origin", "txn_id", "pdus__event_id", "pdus__room_id"]
    readonly_fields = ["origin", "txn_id", "received", "body", "response"]
    fields = readonly_fields
    inlines = [InboundPduInline]
    ordering = ["-received_ts"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundTransaction]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_pdus=Count("pdus"),
                n_failed=Count("pdus", filter=Q(pdus__result__has_key="error")),
            )
        )

    @admin.display(description="received", ordering="received_ts")
    def received(self, obj: InboundTransaction) -> str:
        return _when(obj.received_ts)

    @admin.display(description="PDUs", ordering="n_pdus")
    def pdu_count(self, obj: Any) -> int:
        return int(obj.n_pdus)

    @admin.display(description="failed PDUs", ordering="n_failed")
    def failed_pdus(self, obj: Any) -> int:
        return int(obj.n_failed)

    @admin.display(description="EDUs")
    def edu_count(self, obj: InboundTransaction) -> int:
        edus = obj.body.get("edus") if isinstance(obj.body, dict) else None
        return len(edus) if isinstance(edus, list) else 0
