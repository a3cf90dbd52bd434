"""The operator's view of the identity service: published associations and stored
invitations (read-only: they change through the Identity Service API only)."""

from __future__ import annotations

from django.contrib import admin

from config.portal import ReadOnlyAdmin
from identity.models import Association, PendingInvite


@admin.register(Association)
class AssociationAdmin(ReadOnlyAdmin):
    list_display = ("medium", "address", "mxid", "ts")
    list_filter = ("medium",)
    search_fields = ("address", "mxid")
    ordering = ("-ts",)
    fields = ("medium", "address", "mxid", "ts", "not_before", "not_after")
    readonly_fields = fields


@admin.register(PendingInvite)
class PendingInviteAdmin(ReadOnlyAdmin):
    list_display = ("address", "room_id", "sender", "mxid", "created_at_ms", "delivered_at_ms")
    list_filter = ("medium",)
    search_fields = ("address", "room_id", "sender", "mxid")
    ordering = ("-created_at_ms",)
    fields = (
        "medium",
        "address",
        "room_id",
        "sender",
        "mxid",
        "created_at_ms",
        "bound_at_ms",
        "delivered_at_ms",
    )
    readonly_fields = fields
