"""Delivery of notifications to push gateways, from the PushAction rows.

The rows are the durable record: they are written in the transaction that persists the
event, and each pusher remembers how far it got (``Pusher.last_stream_ordering``), moved
only after its gateway accepted a notification. So whatever stops delivery (a worker that
dies, a gateway that is down) only delays it: the next run starts after the last accepted
row. A notification accepted by the gateway whose acknowledgement we then lose is sent
again; gateways suppress such duplicates by ``event_id`` (Push Gateway API).

Runs are started three ways: ``notify_new_actions`` after the commit of a send that wrote
rows for users with pushers, a retry after a failure (exponential backoff per pusher, as
the Push Gateway API asks), and the periodic sweep (``pushers_to_resume``) for anything
else. One worker at a time delivers for a pusher: it holds a lease on the row, and every
write it makes is conditional on still holding it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from accounts.clock import now_ms
from protocol.push.gateway import (
    Device,
    EventNotification,
    badge_body,
    notify_body,
    rejected_pushkeys,
)
from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from push import gateway, selectors
from push.models import PushAction, Pusher
from push.services.pushers import do_remove_rejected_pusher
from rooms import event_cache
from rooms.models import CurrentState, Event

logger = logging.getLogger(__name__)

# Backoff while a gateway fails (Synapse's figures): 1 s doubling up to an hour; a single
# notification is given up after a day of failures, so a gateway that comes back after a
# long outage is not flooded with stale notifications.
INITIAL_BACKOFF_MS = 1000
MAX_BACKOFF_MS = 3600 * 1000
GIVE_UP_AFTER_MS = 24 * 3600 * 1000
# A lease outlives one gateway request with room to spare; it is renewed at each row.
LEASE_MS = 120 * 1000
# Rows read per query, and rows one run handles before handing over to a new task.
BATCH = 50
RUN_LIMIT = 500


# --- Which users have pushers: a per-process index -------------------------------------

# The index's version in the shared cache (Redis when configured), changed by every
# commit that changed pushers; a process rereads the table when it sees a new version.
_VERSION_KEY = "push:pushers:version"
# How long a process trusts its index without looking at the version.
INDEX_CHECK_S = 1.0


class _PusherIndex:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_user: dict[str, tuple[int, ...]] | None = None
        self.version: str | None = None
        self.checked_at = 0.0

    def forget(self) -> None:
        with self.lock:
            self.by_user = None
            self.version = None

    def get(self) -> dict[str, tuple[int, ...]]:
        now = time.monotonic()
        with self.lock:
            if self.by_user is not None and now - self.checked_at < INDEX_CHECK_S:
                return self.by_user
        try:
            version = cache.get(_VERSION_KEY)
            if version is None:
                cache.add(_VERSION_KEY, secrets.token_hex(8), timeout=None)
                version = cache.get(_VERSION_KEY)
        except Exception:
            # The shared cache is unreachable: reread the table (at most once per
            # INDEX_CHECK_S) rather than fail the send that asked.
            logger.warning("Cannot read the pushers' version; rereading them", exc_info=True)
            version = None
        with self.lock:
            if self.by_user is not None and version is not None and version == self.version:
                self.checked_at = now
                return self.by_user
        # Read after the version: a change committed later moves the version again.
        by_user: dict[str, list[int]] = {}
        for user_id, pk in Pusher.objects.values_list("user_id", "pk"):
            by_user.setdefault(user_id, []).append(pk)
        index = {user_id: tuple(pks) for user_id, pks in by_user.items()}
        with self.lock:
            self.by_user, self.version, self.checked_at = index, version, now
        return index


_index = _PusherIndex()


def pushers_changed() -> None:
    """Pushers were written in the current transaction (connected to Pusher's save and
    delete signals). This process forgets its index at once and again after commit, when
    the new version tells the other processes."""
    _index.forget()

    def publish() -> None:
        _index.forget()
        try:
            cache.set(_VERSION_KEY, secrets.token_hex(8), timeout=None)
        except Exception:
            logger.warning("Cannot publish the pushers' version", exc_info=True)

    transaction.on_commit(publish)


def forget_index() -> None:
    """Tests: drop the index (their databases roll back behind its back)."""
    _index.forget()


def pusher_ids_of(user_ids: Iterable[str]) -> list[int]:
    index = _index.get()
    return [pk for user_id in user_ids for pk in index.get(user_id, ())]


def notify_new_actions(user_ids: Iterable[str], stream_ordering: int) -> None:
    """PushAction rows at ``stream_ordering`` were written for ``user_ids`` in the current
    transaction: after it commits, start delivery for those of them with pushers. The
    send path calls it for every event that notified someone; it costs a callback, and
    the lookup runs after commit, outside the room lock, from an in-memory index (a
    rare reread of the pushers when they changed never lengthens a send's transaction).
    A run reads from its pusher's own position, not from ``stream_ordering``: rows are
    never delivered out of order."""
    users = list(user_ids)
    if users:
        transaction.on_commit(lambda: kick(users))


def kick(user_ids: Iterable[str]) -> None:
    """Queue a delivery run for each pusher of ``user_ids``."""
    from push.tasks import deliver

    for pk in pusher_ids_of(user_ids):
        try:
            deliver.delay(pk)
        except Exception:
            # The sweep resumes it; the rows are safe.
            logger.warning("Could not queue push delivery for pusher %s", pk, exc_info=True)


# --- One pusher's run ------------------------------------------------------------------


@dataclass
class RunResult:
    """How a run went: ``sent`` notifications accepted, ``handled`` rows passed (sent,
    already read, or given up); ``retry_in_ms`` when the gateway failed and a retry is
    due then; ``more`` when rows remain for a new task; ``stopped`` when the pusher went
    away (deleted, rejected) or another run took over."""

    sent: int = 0
    handled: int = 0
    retry_in_ms: int | None = None
    more: bool = False
    stopped: bool = False


def _free(now: int) -> Q:
    return Q(lease_until_ts__isnull=True) | Q(lease_until_ts__lt=now)


def _due(now: int) -> Q:
    return Q(retry_at_ts__isnull=True) | Q(retry_at_ts__lte=now)


def _acquire(pusher_id: int, token: str) -> Pusher | None:
    """Take the pusher's lease, unless another run holds it or its backoff is not over."""
    now = now_ms()
    taken = (
        Pusher.objects.filter(pk=pusher_id)
        .filter(_free(now), _due(now))
        .update(lease_token=token, lease_until_ts=now + LEASE_MS)
    )
    if not taken:
        return None
    return Pusher.objects.filter(pk=pusher_id, lease_token=token).first()


def _release(pusher_id: int, token: str) -> None:
    Pusher.objects.filter(pk=pusher_id, lease_token=token).update(
        lease_token=None, lease_until_ts=None
    )


def _pending(pusher_id: int, user_id: str) -> bool:
    last = Pusher.objects.filter(pk=pusher_id).values_list("last_stream_ordering", flat=True)
    position = last.first()
    if position is None:
        return False
    return PushAction.objects.filter(
        user_id=user_id, notify=True, stream_ordering__gt=position
    ).exists()


def deliver_pending(pusher_id: int) -> RunResult:
    """Send the pusher's notifications after its position, oldest first, until none are
    left, the gateway fails, or the run has handled RUN_LIMIT rows (``more``)."""
    token = secrets.token_hex(16)
    result = RunResult()
    while True:
        pusher = _acquire(pusher_id, token)
        if pusher is None:
            return result
        try:
            _deliver_rows(pusher, token, result)
        finally:
            _release(pusher_id, token)
        if result.retry_in_ms is not None or result.stopped:
            return result
        # Rows may have arrived while the lease was held (their kick found it taken):
        # look again now that it is released.
        if not _pending(pusher_id, pusher.user_id):
            return result
        if result.handled >= RUN_LIMIT:
            result.more = True
            return result


def _deliver_rows(pusher: Pusher, token: str, result: RunResult) -> None:
    """Deliver rows until none are left, the run stops or retries, or RUN_LIMIT."""
    while result.handled < RUN_LIMIT:
        rows = list(
            PushAction.objects.filter(
                user_id=pusher.user_id,
                notify=True,
                stream_ordering__gt=pusher.last_stream_ordering,
            )
            .annotate(read=selectors.read_already())
            .select_related("room")
            .order_by("stream_ordering")[: min(BATCH, RUN_LIMIT - result.handled)]
        )
        if not rows:
            return
        for row in rows:
            outcome = _deliver_one(pusher, token, row)
            if outcome == "stop":
                result.stopped = True
                return
            if isinstance(outcome, int):
                result.retry_in_ms = outcome
                return
            result.handled += 1
            if outcome == "sent":
                result.sent += 1


def _advance(pusher: Pusher, token: str, row: PushAction, *, success: bool) -> bool:
    """Move the pusher past ``row`` (and renew the lease); False if the lease is lost or
    the pusher was deleted meanwhile."""
    now = now_ms()
    fields: dict[str, object] = {
        "last_stream_ordering": row.stream_ordering,
        "lease_until_ts": now + LEASE_MS,
        "failing_since_ts": None,
        "retry_at_ts": None,
        "retry_delay_ms": 0,
    }
    if success:
        fields["last_success_ts"] = now
    moved = Pusher.objects.filter(pk=pusher.pk, lease_token=token).update(**fields)
    pusher.last_stream_ordering = row.stream_ordering
    pusher.failing_since_ts = None
    pusher.retry_delay_ms = 0
    return bool(moved)


def _deliver_one(pusher: Pusher, token: str, row: PushAction) -> str | int:
    """ "sent", "skipped", "stop", or the milliseconds until a retry."""
    notification = None if row.read else _notification(pusher.user_id, row)
    if notification is None:
        # Read before we got to it, or its event is gone: nothing to push.
        return "skipped" if _advance(pusher, token, row, success=False) else "stop"
    device = Device(pusher.app_id, pusher.pushkey, pusher.created_ts, pusher.data)
    body = notify_body(notification, device, pusher.user_id)
    try:
        answer = gateway.post_notification(str(pusher.data.get("url", "")), body)
    except (gateway.GatewayUnavailable, gateway.GatewayRefused) as exc:
        return _failed(pusher, token, row, str(exc))
    if answer.status >= 400:
        # The gateway refuses this request (and would refuse it again): skip it.
        logger.warning(
            "Push gateway of %s answered %s for %s; skipping it",
            pusher.user_id,
            answer.status,
            row.event_id,
        )
        return "skipped" if _advance(pusher, token, row, success=False) else "stop"
    if not _advance(pusher, token, row, success=True):
        return "stop"
    _remember_badge(pusher.pk, notification.unread)
    if pusher.pushkey in rejected_pushkeys(answer.body):
        do_remove_rejected_pusher(pusher)
        return "stop"
    return "sent"


def _failed(pusher: Pusher, token: str, row: PushAction, reason: str) -> str | int:
    now = now_ms()
    failing_since = pusher.failing_since_ts or now
    if now - failing_since > GIVE_UP_AFTER_MS:
        logger.warning(
            "Giving up on a notification to %s (%s) after a day of failures: %s",
            pusher.user_id,
            pusher.app_id,
            reason,
        )
        return "skipped" if _advance(pusher, token, row, success=False) else "stop"
    delay = min(max(pusher.retry_delay_ms * 2, INITIAL_BACKOFF_MS), MAX_BACKOFF_MS)
    logger.info(
        "Push to %s (%s) failed (%s); retrying in %d s",
        pusher.user_id,
        pusher.app_id,
        reason,
        delay // 1000,
    )
    updated = Pusher.objects.filter(pk=pusher.pk, lease_token=token).update(
        failing_since_ts=failing_since, retry_at_ts=now + delay, retry_delay_ms=delay
    )
    return delay if updated else "stop"


def _notification(user_id: str, row: PushAction) -> EventNotification | None:
    """The event behind ``row`` as the gateway sees it, with the user's unread count."""
    event = (
        Event.objects.filter(event_id=row.event_id)
        .values_list("type", "sender", "state_key", "pdu", "redacted_by", "room__room_version")
        .first()
    )
    if event is None:
        return None
    etype, sender, state_key, pdu, redacted_by, room_version = event
    if redacted_by:
        pdu = redact_event(pdu, KNOWN_ROOM_VERSIONS[room_version])
    content = pdu.get("content")
    room_name, room_alias, sender_name = _room_context(row, sender)
    return EventNotification(
        event_id=row.event_id,
        room_id=row.room.room_id,
        type=etype,
        sender=sender,
        state_key=state_key,
        content=content if isinstance(content, dict) else {},
        actions=row.actions if isinstance(row.actions, list) else [],
        unread=selectors.unread_notification_count(user_id),
        sender_display_name=sender_name,
        room_name=room_name,
        room_alias=room_alias,
    )


def _room_context(row: PushAction, sender: str) -> tuple[str | None, str | None, str | None]:
    """The room's name and canonical alias and the sender's display name, from the room's
    current state."""
    wanted = Q(type="m.room.name", state_key="") | Q(type="m.room.canonical_alias", state_key="")
    wanted |= Q(type="m.room.member", state_key=sender)
    ids = dict(
        CurrentState.objects.filter(wanted, room_id=row.room_id).values_list("type", "event_id")
    )
    events = event_cache.get_events(ids.values())

    def field(event_type: str, key: str) -> str | None:
        event = events.get(ids.get(event_type, ""))
        value = event.content.get(key) if event is not None else None
        return value if isinstance(value, str) and value else None

    return (
        field("m.room.name", "name"),
        field("m.room.canonical_alias", "alias"),
        field("m.room.member", "displayname"),
    )


# --- Badge updates ----------------------------------------------------------------------

# The unread count each pusher's gateway was last told, in the shared cache: a receipt
# that leaves the count as it was sends nothing (Synapse keeps the same per pusher).
_BADGE_KEY = "push:badge:{}"
BADGE_MEMORY_S = 7 * 24 * 3600


def _last_badge(pusher_id: int) -> int | None:
    try:
        value = cache.get(_BADGE_KEY.format(pusher_id))
    except Exception:
        logger.warning("Cannot read a pusher's last badge count", exc_info=True)
        return None
    return value if isinstance(value, int) else None


def _remember_badge(pusher_id: int, unread: int) -> None:
    try:
        cache.set(_BADGE_KEY.format(pusher_id), unread, timeout=BADGE_MEMORY_S)
    except Exception:
        logger.warning("Cannot keep a pusher's badge count", exc_info=True)


def notify_receipt_moved(user_id: str) -> None:
    """A local user's read receipt moved in the current transaction (rooms.hooks): after
    it commits, queue a badge update for each of the user's pushers (looked up in the
    in-memory index, so users without pushers cost nothing)."""

    def kick_badges() -> None:
        from push.tasks import send_badge

        for pk in pusher_ids_of([user_id]):
            try:
                send_badge.delay(pk)
            except Exception:
                logger.warning("Could not queue a badge update for pusher %s", pk, exc_info=True)

    transaction.on_commit(kick_badges)


def send_badge(pusher_id: int) -> bool:
    """Tell the pusher's gateway the user's unread count, unless it was told that count
    last; True if a request was accepted. A badge update is not retried: the next one,
    or the next notification, carries the count again."""
    pusher = Pusher.objects.filter(pk=pusher_id).first()
    if pusher is None:
        return False
    unread = selectors.unread_notification_count(pusher.user_id)
    if _last_badge(pusher.pk) == unread:
        return False
    device = Device(pusher.app_id, pusher.pushkey, pusher.created_ts, pusher.data)
    url = str(pusher.data.get("url", ""))
    try:
        answer = gateway.post_notification(url, badge_body(device, unread))
    except (gateway.GatewayUnavailable, gateway.GatewayRefused) as exc:
        logger.info("Badge update to %s (%s) failed: %s", pusher.user_id, pusher.app_id, exc)
        return False
    if answer.status >= 400:
        logger.warning(
            "Push gateway of %s answered %s to a badge update", pusher.user_id, answer.status
        )
        return False
    _remember_badge(pusher.pk, unread)
    if pusher.pushkey in rejected_pushkeys(answer.body):
        do_remove_rejected_pusher(pusher)
    return True


# --- The sweep -------------------------------------------------------------------------


def pushers_to_resume() -> list[int]:
    """Pushers with rows after their position, not in backoff and not being delivered:
    their kick was lost (a worker died, the queue was down) or their retry was."""
    now = now_ms()
    pending = PushAction.objects.filter(
        user_id=OuterRef("user_id"),
        notify=True,
        stream_ordering__gt=OuterRef("last_stream_ordering"),
    )
    return list(
        Pusher.objects.filter(Exists(pending))
        .filter(_free(now), _due(now))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
