"""What the admin API reads about federation destinations (Synapse's field names)."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from federation.models import Destination
from protocol.errors import MatrixError
from rooms.models import Event, Membership

# order_by values of GET /_synapse/admin/v1/federation/destinations.
DESTINATION_ORDERS = (
    "destination",
    "retry_last_ts",
    "retry_interval",
    "failure_ts",
    "last_successful_stream_ordering",
)


def destination_json(destination: Destination) -> dict[str, Any]:
    """Synapse's retry timings: ``retry_last_ts`` the last failed attempt (0 when the last
    attempt succeeded), ``retry_interval`` the delay before the next one (0: none),
    ``failure_ts`` when the failures in a row began."""
    failing = destination.failures > 0 and destination.retry_at_ts is not None
    return {
        "destination": destination.server_name,
        "retry_last_ts": (
            destination.retry_at_ts - destination.retry_delay_ms
            if failing and destination.retry_at_ts is not None
            else 0
        ),
        "retry_interval": destination.retry_delay_ms if failing else 0,
        "failure_ts": destination.failing_since_ts,
        # Not tracked here: which PDU was last acknowledged is not kept once it is.
        "last_successful_stream_ordering": None,
    }


def destinations(
    *, start: int, limit: int, order_by: str, backwards: bool, search: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    rows = Destination.objects.all()
    if search:
        rows = rows.filter(server_name__icontains=search)
    items = [destination_json(d) for d in rows.order_by("server_name")]
    if order_by != "destination":
        items.sort(key=lambda d: (d[order_by] is None, d[order_by] or 0))
    if backwards:
        items.reverse()
    return items[start : start + limit], len(items)


def access_destination(server_name: str) -> Destination:
    destination = Destination.objects.filter(server_name=server_name).first()
    if destination is None:
        raise MatrixError("M_NOT_FOUND", "Unknown destination")
    return destination


def destination_rooms(
    destination: Destination, *, start: int, limit: int, backwards: bool
) -> tuple[list[dict[str, Any]], int]:
    """The rooms this server shares with the destination (a user of it is joined), with
    the stream position of the room's latest event here."""
    room_ids = (
        Membership.objects.filter(
            membership="join", user_id__endswith=f":{destination.server_name}"
        )
        .values_list("room__room_id", flat=True)
        .distinct()
    )
    ordered = sorted(set(room_ids), reverse=backwards)
    page = ordered[start : start + limit]
    latest = dict(
        Event.objects.filter(room__room_id__in=page, stream_ordering__isnull=False)
        .values("room__room_id")
        .annotate(last=Max("stream_ordering"))
        .values_list("room__room_id", "last")
    )
    return [{"room_id": r, "stream_ordering": latest.get(r, 0)} for r in page], len(ordered)
