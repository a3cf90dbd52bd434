"""Reads of the push app: a user's pushers, and unread notifications."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from push.models import PushAction, Pusher
from rooms.models import Membership, Receipt

# Both clear notifications; the one further ahead counts ("Receiving notifications").
READ_RECEIPT_TYPES = ("m.read", "m.read.private")


def pushers_of(user_id: str) -> list[dict[str, Any]]:
    """GET /pushers: the user's pushers as the spec shows them."""
    out = []
    for pusher in Pusher.objects.filter(user_id=user_id).order_by("pk"):
        shown: dict[str, Any] = {
            "pushkey": pusher.pushkey,
            "kind": pusher.kind,
            "app_id": pusher.app_id,
            "app_display_name": pusher.app_display_name,
            "device_display_name": pusher.device_display_name,
            "lang": pusher.lang,
            "data": pusher.data,
        }
        if pusher.profile_tag is not None:
            shown["profile_tag"] = pusher.profile_tag
        out.append(shown)
    return out


def read_by_receipt() -> Exists:
    """For a PushAction row (the outer query): has the user's read receipt passed it?

    An unthreaded receipt ("" thread) covers every thread of the room, a threaded one
    only its own thread ("main" or a thread root); either of m.read and m.read.private.
    """
    return Exists(
        Receipt.objects.filter(
            room_id=OuterRef("room_id"),
            user_id=OuterRef("user_id"),
            receipt_type__in=READ_RECEIPT_TYPES,
            event_stream_ordering__gte=OuterRef("stream_ordering"),
        ).filter(Q(thread_id="") | Q(thread_id=OuterRef("thread_id")))
    )


def unread_actions(user_id: str) -> QuerySet[PushAction]:
    """The user's notifications not yet read, in the rooms they are joined to."""
    joined = Membership.objects.filter(
        room_id=OuterRef("room_id"), user_id=OuterRef("user_id"), membership="join"
    )
    return (
        PushAction.objects.filter(user_id=user_id, notify=True)
        .filter(Exists(joined))
        .exclude(read_by_receipt())
    )


def unread_notification_count(user_id: str) -> int:
    """The push gateway's ``counts.unread``: "the number of unread messages a user has
    across all of the rooms they are a member of", summed over the joined rooms' unread
    notifications (the same rows /sync's per-room ``notification_count`` counts)."""
    return unread_actions(user_id).count()
