"""What the admin portal's front page shows: the server at a glance (config/admin_site.py).

Reads only, each an aggregate query (counts and sums in the database, never a loop over
rows), so the page costs the same on a server with ten users or a million.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, Count, Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import AccessToken, Device, User
from federation.models import Destination, OutboundEDU, OutboundPDU
from media.models import LocalMedia, RemoteMedia, RemoteThumbnail, Thumbnail
from rooms.models import Event, Room

logger = logging.getLogger(__name__)

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
# How long the page waits for workers to answer a ping.
WORKER_PING_TIMEOUT_S = 1.5


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class UserCounts:
    total: int
    deactivated: int
    active_24h: int
    active_30d: int


def user_counts(at_ms: int) -> UserCounts:
    """Local users; "active" means a device or session of theirs was seen in the window."""

    def seen_since(since_ms: int) -> Q:
        device = Device.objects.filter(user=OuterRef("pk"), last_seen_ts__gte=since_ms)
        token = AccessToken.objects.filter(user=OuterRef("pk"), last_used_ms__gte=since_ms)
        return Q(Exists(device)) | Q(Exists(token))

    counts = User.objects.aggregate(
        total=Count("pk"),
        deactivated=Count("pk", filter=Q(is_active=False)),
        active_24h=Count("pk", filter=seen_since(at_ms - DAY_MS)),
        active_30d=Count("pk", filter=seen_since(at_ms - 30 * DAY_MS)),
    )
    return UserCounts(**counts)


@dataclass(frozen=True)
class HourCount:
    start: datetime
    events: int


def events_per_hour(at_ms: int, hours: int = 24) -> list[HourCount]:
    """Timeline events (not outliers) per hour by their origin_server_ts, for the last
    ``hours`` whole hours up to and including the current one, oldest first."""
    end_ms = (at_ms // HOUR_MS + 1) * HOUR_MS
    start_ms = end_ms - hours * HOUR_MS
    rows = (
        Event.objects.filter(
            origin_server_ts__gte=start_ms, origin_server_ts__lt=end_ms, outlier=False
        )
        .annotate(
            # Integer division on both SQLite and PostgreSQL (bigint / bigint).
            hour=(F("origin_server_ts") - Value(start_ms)) / Value(HOUR_MS),
        )
        .values("hour")
        .annotate(n=Count("pk"))
        .order_by()
    )
    per_hour: dict[int, int] = {}
    for row in rows:
        per_hour[int(row["hour"])] = per_hour.get(int(row["hour"]), 0) + row["n"]
    return [
        HourCount(
            datetime.fromtimestamp((start_ms + i * HOUR_MS) / 1000, tz=UTC), per_hour.get(i, 0)
        )
        for i in range(hours)
    ]


@dataclass(frozen=True)
class MediaUsage:
    local_count: int
    local_bytes: int
    remote_count: int
    remote_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.local_bytes + self.remote_bytes


def _sum(qs: Any, **extra: Any) -> dict[str, int]:
    zero = Value(0, output_field=BigIntegerField())
    return qs.aggregate(count=Count("pk"), bytes=Coalesce(Sum("size"), zero), **extra)  # type: ignore[no-any-return]


def media_usage() -> MediaUsage:
    """Bytes stored: local uploads and their thumbnails; the cache of other servers'
    media (only what is held now: a purged item keeps its row but not its file)."""
    local = _sum(LocalMedia.objects.filter(uploaded_ts__isnull=False))
    local_thumbs = _sum(Thumbnail.objects.all())
    remote = _sum(RemoteMedia.objects.filter(fetched_ts__isnull=False).exclude(storage_name=""))
    remote_thumbs = _sum(RemoteThumbnail.objects.all())
    return MediaUsage(
        local_count=local["count"],
        local_bytes=local["bytes"] + local_thumbs["bytes"],
        remote_count=remote["count"],
        remote_bytes=remote["bytes"] + remote_thumbs["bytes"],
    )


@dataclass(frozen=True)
class FederationQueue:
    pdus: int
    edus: int
    destinations_waiting: int
    destinations_failing: int

    @property
    def depth(self) -> int:
        return self.pdus + self.edus


def federation_queue() -> FederationQueue:
    """The outbound queue: PDUs and EDUs not yet acknowledged, over how many servers,
    and how many servers are failing (backing off)."""
    pdus = OutboundPDU.objects.aggregate(
        n=Count("pk"), destinations=Count("destination", distinct=True)
    )
    edus = OutboundEDU.objects.aggregate(
        n=Count("pk"), destinations=Count("destination", distinct=True)
    )
    waiting = Destination.objects.filter(
        Q(Exists(OutboundPDU.objects.filter(destination=OuterRef("pk"))))
        | Q(Exists(OutboundEDU.objects.filter(destination=OuterRef("pk"))))
    ).count()
    return FederationQueue(
        pdus=pdus["n"],
        edus=edus["n"],
        destinations_waiting=waiting,
        destinations_failing=Destination.objects.filter(failures__gt=0).count(),
    )


@dataclass(frozen=True)
class WorkerHealth:
    workers: list[str] = field(default_factory=list)
    error: str = ""
    # Tasks run inline in the process that queues them (CELERY_TASK_ALWAYS_EAGER, the
    # test settings): there is no worker to ask.
    eager: bool = False

    @property
    def healthy(self) -> bool:
        return self.eager or bool(self.workers)


def worker_health(timeout_s: float = WORKER_PING_TIMEOUT_S) -> WorkerHealth:
    """Ping the Celery workers through the broker; those that answer within the timeout.

    In the embedded default the worker is a thread of the web process (config/web.py),
    still reached through the broker like any other: an answer means it consumes tasks.
    """
    from config.celery import app

    if app.conf.task_always_eager:
        return WorkerHealth(eager=True)
    try:
        replies = app.control.ping(timeout=timeout_s) or []
    except Exception as exc:  # the broker itself is unreachable
        logger.warning("Could not ping the Celery workers", exc_info=True)
        return WorkerHealth(error=f"{type(exc).__name__}: {exc}")
    names = sorted(name for reply in replies for name, answer in reply.items() if answer)
    return WorkerHealth(workers=names)


def database_size() -> int | None:
    """Bytes the database takes: pg_database_size on PostgreSQL; on SQLite the file and
    its write-ahead log. None when it cannot be told (an in-memory database)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict["NAME"])
        path = Path(name)
        if name.startswith("file:") or ":memory:" in name or not path.is_file():
            return None
        wal = Path(f"{name}-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)
    return None


@dataclass(frozen=True)
class Dashboard:
    users: UserCounts
    rooms: int
    events_per_hour: list[HourCount]
    media: MediaUsage
    federation: FederationQueue
    worker: WorkerHealth
    database_bytes: int | None
    database_vendor: str

    @property
    def events_24h(self) -> int:
        return sum(hour.events for hour in self.events_per_hour)

    @property
    def busiest_hour(self) -> int:
        return max((hour.events for hour in self.events_per_hour), default=0)


def dashboard(at_ms: int | None = None) -> Dashboard:
    at = now_ms() if at_ms is None else at_ms
    return Dashboard(
        users=user_counts(at),
        rooms=Room.objects.count(),
        events_per_hour=events_per_hour(at),
        media=media_usage(),
        federation=federation_queue(),
        worker=worker_health(),
        database_bytes=database_size(),
        database_vendor={"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(
            connection.vendor, connection.vendor
        ),
    )
