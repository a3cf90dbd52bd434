"""The outbound queue: PDUs and EDUs for other servers, sent in transactions.

Spec: content/server-server-api.md#transactions and PUT /_matrix/federation/v1/send/{txnId}.

Enqueuing writes rows (``OutboundPDU``, ``OutboundEDU``) in the caller's transaction, so
what a client was told is sent is stored with it; a run for each destination is queued on
commit. The rows are the truth: a lost task, a worker that dies mid-send, a server that is
down only delay delivery.

A keyed EDU (``enqueue_edus(..., key=...)``: the latest typing state of a typist, the
latest receipt of a reader) replaces the one of the same type and key still waiting, as
Synapse's keyed EDUs do, so a destination that is behind gets the latest state once.
EDUs of a type that carries a list of updates (m.presence, queued one per user) go as
one EDU per transaction (``batched_edus``).

A run (``send_pending``) holds the destination's lease, so one transaction at a time is in
flight per destination. It takes at most 50 PDUs and 100 EDUs in queue order, marks them
with a new transaction ID (``Destination.txn_id``) and PUTs them; the rows are deleted only
after a 200. Until then the same transaction, with the same ID and items, is sent again
(the spec asks senders to retry for a 200 before sending another txnId, and receivers
deduplicate by origin and txnId), whether the request failed or the worker died before it
learnt the answer (its lease expires and the sweep resumes).

Failures back off exponentially (Synapse's figures: 5 s doubling to an hour): a dead server
gets one attempt per backoff period. Runs are started on enqueue, by the retry a failed run
schedules, by the periodic sweep (``destinations_to_resume``), and by an operator's "retry
now" in the admin.

Catch-up: a destination that has been failing for CATCH_UP_AFTER_MS, or whose backlog of
waiting PDUs passes CATCH_UP_BACKLOG, gets only the newest waiting PDU of each room (queue
order), as Synapse's catch-up sends the latest events of each room it missed; the server
fills the gap behind them from their prev_events (/get_missing_events, or /state_ids when
the gap is wide). m.typing EDUs are dropped then too (they expire within seconds); every
other EDU (receipts, to-device messages) is kept and sent in order.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q

from accounts.clock import now_ms
from federation import client, leases
from federation.models import Destination, OutboundEDU, OutboundPDU
from protocol.events import Event

logger = logging.getLogger(__name__)

# Spec: "Transactions are limited in size; they can have at most 50 PDUs and 100 EDUs."
MAX_PDUS = 50
MAX_EDUS = 100
# Backoff while a destination fails (Synapse's): 5 s doubling up to an hour.
INITIAL_BACKOFF_MS = 5 * 1000
MAX_BACKOFF_MS = 3600 * 1000
# A lease outlives one request with room to spare; it is renewed at each transaction.
LEASE_MS = 120 * 1000
# Transactions one run sends before handing over to a new task.
RUN_LIMIT = 20
# When a destination is caught up rather than sent its whole backlog (see above).
CATCH_UP_AFTER_MS = 3600 * 1000
CATCH_UP_BACKLOG = 1000
# EDUs dropped on catch-up: stale long before the server is back.
STALE_EDU_TYPES = frozenset({"m.typing"})
# EDU types whose content is a list of updates, under this key, that one EDU carries
# together (Server-Server API, "Presence": m.presence's ``push``).
BATCHED_EDU_LISTS = {"m.presence": "push"}


# --- Enqueuing ---------------------------------------------------------------------------


def _destinations(server_names: Iterable[str]) -> list[Destination]:
    """The Destination rows of ``server_names`` (other servers only), created if new."""
    names = sorted({name for name in server_names if name and name != settings.SERVER_NAME})
    if not names:
        return []
    found = list(Destination.objects.filter(server_name__in=names))
    missing = set(names) - {d.server_name for d in found}
    if missing:
        Destination.objects.bulk_create(
            [Destination(server_name=name) for name in sorted(missing)], ignore_conflicts=True
        )
        found = list(Destination.objects.filter(server_name__in=names))
    return found


def enqueue_pdu(pdu: Event, destinations: Iterable[str]) -> list[str]:
    """Queue ``pdu`` for each of ``destinations`` (server names; this server is skipped)
    in the current transaction, and start sending to them once it commits. A PDU already
    queued for a destination is not queued twice. Returns the destinations queued for."""
    targets = _destinations(destinations)
    if not targets:
        return []
    OutboundPDU.objects.bulk_create(
        [
            OutboundPDU(destination=d, room_id=pdu.room_id, event_id=pdu.event_id, pdu=pdu.pdu)
            for d in targets
        ],
        ignore_conflicts=True,
    )
    names = [d.server_name for d in targets]
    transaction.on_commit(lambda: kick(names))
    return names


def enqueue_edu(edu_type: str, content: dict[str, Any], destination: str) -> bool:
    """Queue an EDU for ``destination`` in the current transaction, and start sending
    once it commits. False (nothing queued) for this server itself."""
    return bool(enqueue_edus(edu_type, content, [destination]))


def enqueue_edus(
    edu_type: str, content: dict[str, Any], destinations: Iterable[str], *, key: str = ""
) -> list[str]:
    """Queue an EDU for each of ``destinations`` (this server is skipped) in the current
    transaction, and start sending to them once it commits; the destinations queued for.

    With a ``key``, the EDU replaces any of the same type and key still waiting for a
    destination (Synapse's keyed EDUs): a server that is slow or backing off gets the
    latest typing state or receipt once, not every step in between. One that is in
    flight stays, and goes before the new one."""
    with transaction.atomic():
        targets = _destinations(destinations)
        if not targets:
            return []
        if key:
            OutboundEDU.objects.filter(
                destination__in=targets, edu_type=edu_type, key=key, txn_id__isnull=True
            ).delete()
        OutboundEDU.objects.bulk_create(
            OutboundEDU(destination=d, edu_type=edu_type, content=content, key=key)
            for d in targets
        )
    names = [d.server_name for d in targets]
    transaction.on_commit(lambda: kick(names))
    return names


def kick(server_names: Iterable[str]) -> None:
    """Queue a run for each destination."""
    from federation.tasks import send_to

    for name in server_names:
        try:
            send_to.delay(name)
        except Exception:
            # The sweep resumes it; the rows are safe.
            logger.warning("Could not queue a federation run for %s", name, exc_info=True)


# --- One destination's run ---------------------------------------------------------------


@dataclass
class RunResult:
    """How a run went: ``sent`` transactions acknowledged; ``retry_in_ms`` when one failed
    and a retry is due then; ``more`` when items remain for a new task."""

    sent: int = 0
    retry_in_ms: int | None = None
    more: bool = False


def _due(now: int) -> Q:
    return Q(retry_at_ts__isnull=True) | Q(retry_at_ts__lte=now)


def _acquire(server_name: str, token: str) -> Destination | None:
    """Take the destination's lease, unless a run holds it (a run of a process of this
    host that is gone does not: federation.leases) or its backoff is not over."""
    now = now_ms()
    holder = (
        Destination.objects.filter(server_name=server_name)
        .values_list("lease_token", flat=True)
        .first()
    )
    taken = (
        Destination.objects.filter(server_name=server_name)
        .filter(leases.free(now, holder), _due(now))
        .update(lease_token=token, lease_until_ts=now + LEASE_MS)
    )
    if not taken:
        return None
    return Destination.objects.filter(server_name=server_name, lease_token=token).first()


def _release(destination: Destination, token: str) -> None:
    Destination.objects.filter(pk=destination.pk, lease_token=token).update(
        lease_token=None, lease_until_ts=None
    )


def send_pending(server_name: str) -> RunResult:
    """Send the destination's queue, a transaction at a time, until it is empty, a
    transaction fails, or RUN_LIMIT transactions went (``more``)."""
    token = leases.new_token()
    result = RunResult()
    while True:
        destination = _acquire(server_name, token)
        if destination is None:
            return result
        try:
            _send_transactions(destination, token, result)
        finally:
            _release(destination, token)
        if result.retry_in_ms is not None or result.more:
            return result
        # Items may have been queued after the run found none, their kick finding the
        # lease taken: look again now that it is released.
        if not _has_items(destination):
            return result


def _send_transactions(destination: Destination, token: str, result: RunResult) -> None:
    while True:
        if result.sent >= RUN_LIMIT:
            result.more = _has_items(destination)
            return
        outcome = _send_one(destination, token)
        if outcome is None:
            return
        if outcome is False:
            result.retry_in_ms = destination.retry_delay_ms
            return
        result.sent += 1


def _has_items(destination: Destination) -> bool:
    return (
        OutboundPDU.objects.filter(destination=destination).exists()
        or OutboundEDU.objects.filter(destination=destination).exists()
    )


def _send_one(destination: Destination, token: str) -> bool | None:
    """Send one transaction: the one in flight, or the next from the queue. True when
    done with it (acknowledged, or refused for good and dropped), False when it failed
    (the backoff is set), None when nothing is left to send or the lease was lost."""
    txn = _transaction_to_send(destination, token)
    if txn is None:
        return None
    txn_id, pdus, edus = txn
    body: dict[str, Any] = {
        "origin": settings.SERVER_NAME,
        "origin_server_ts": now_ms(),
        "pdus": [row.pdu for row in pdus],
    }
    if edus:
        body["edus"] = batched_edus(edus)
    path = f"/_matrix/federation/v1/send/{txn_id}"
    try:
        response = client.send_request(destination.server_name, "PUT", path, content=body)
    except client.FederationError as exc:
        return _failed(destination, token, str(exc))
    if is_refused_for_good(response.status):
        reason = f"refused transaction {txn_id} with {response.status}; dropped it"
        logger.warning(
            "%s %s (%d PDUs, %d EDUs): %s",
            destination.server_name,
            reason,
            len(pdus),
            len(edus),
            response.body[:500].decode("utf-8", "replace"),
        )
        return _done_with(destination, token, txn_id, error=reason)
    if response.status != 200:
        return _failed(destination, token, f"answered {response.status}")
    _log_pdu_errors(destination, response.body)
    return _done_with(destination, token, txn_id)


def batched_edus(rows: Iterable[OutboundEDU]) -> list[dict[str, Any]]:
    """The EDUs of a transaction, in queue order, those of a type that carries a list of
    updates (BATCHED_EDU_LISTS: m.presence's ``push``) merged into the first of their
    type: queued one per user (keyed, so coalesced while they wait), sent as one."""
    out: list[dict[str, Any]] = []
    merged: dict[str, list[Any]] = {}
    for row in rows:
        list_key = BATCHED_EDU_LISTS.get(row.edu_type)
        items = row.content.get(list_key) if list_key else None
        if list_key is None or not isinstance(items, list):
            out.append({"edu_type": row.edu_type, "content": row.content})
        elif row.edu_type in merged:
            merged[row.edu_type].extend(items)
        else:
            merged[row.edu_type] = list(items)
            out.append(
                {
                    "edu_type": row.edu_type,
                    "content": {**row.content, list_key: merged[row.edu_type]},
                }
            )
    return out


def is_refused_for_good(status: int) -> bool:
    """The destination refused the transaction itself: a 4xx (Server-Server API, PUT
    /send: the transaction is bad, and sending it again gets the same answer), so it is
    dropped rather than blocking the destination's queue. Not a 429 (rate limited), a
    408 (it gave up waiting for the request), nor a 401: the signature was refused, which
    says nothing of the transaction, and usually means the server cannot fetch or has
    not yet fetched this server's key; they are retried with backoff."""
    return 400 <= status < 500 and status not in (401, 408, 429)


def _done_with(
    destination: Destination, token: str, txn_id: str, *, error: str = ""
) -> bool | None:
    """The destination answered the transaction (``error``: refusing it for good): its
    rows are deleted, the backoff ends, and the next transaction can go."""
    with transaction.atomic():
        now = now_ms()
        changes: dict[str, Any] = {
            "txn_id": None,
            "failures": 0,
            "failing_since_ts": None,
            "retry_delay_ms": 0,
            "retry_at_ts": None,
            "last_error": error[:1000],
            "lease_until_ts": now + LEASE_MS,
        }
        if not error:
            changes["last_success_ts"] = now
        held = Destination.objects.filter(pk=destination.pk, lease_token=token).update(**changes)
        # Answered, so done with, whoever holds the lease now.
        OutboundPDU.objects.filter(destination=destination, txn_id=txn_id).delete()
        OutboundEDU.objects.filter(destination=destination, txn_id=txn_id).delete()
    destination.txn_id = None
    destination.failures = 0
    destination.failing_since_ts = None
    destination.retry_delay_ms = 0
    return True if held else None


def _transaction_to_send(
    destination: Destination, token: str
) -> tuple[str, list[OutboundPDU], list[OutboundEDU]] | None:
    """The transaction in flight, if any (sent again unchanged), else a new one from the
    head of the queue; None when the queue is empty or the lease was lost."""
    txn_id = destination.txn_id
    if txn_id is not None:
        pdus = list(
            OutboundPDU.objects.filter(destination=destination, txn_id=txn_id).order_by("id")
        )
        edus = list(
            OutboundEDU.objects.filter(destination=destination, txn_id=txn_id).order_by("id")
        )
        if pdus or edus:
            return txn_id, pdus, edus
    _catch_up_if_behind(destination)
    with transaction.atomic():
        pdus = list(
            OutboundPDU.objects.filter(destination=destination, txn_id__isnull=True).order_by(
                "id"
            )[:MAX_PDUS]
        )
        edus = list(
            OutboundEDU.objects.filter(destination=destination, txn_id__isnull=True).order_by(
                "id"
            )[:MAX_EDUS]
        )
        if not pdus and not edus:
            return None
        txn_id = f"{now_ms()}_{secrets.token_hex(6)}"
        held = Destination.objects.filter(pk=destination.pk, lease_token=token).update(
            txn_id=txn_id
        )
        if not held:
            return None
        OutboundPDU.objects.filter(pk__in=[row.pk for row in pdus]).update(txn_id=txn_id)
        OutboundEDU.objects.filter(pk__in=[row.pk for row in edus]).update(txn_id=txn_id)
    destination.txn_id = txn_id
    return txn_id, pdus, edus


def _catch_up_if_behind(destination: Destination) -> None:
    """Drop the waiting PDUs a long-failing or far-behind destination can do without:
    all but the newest of each room (see the module's docstring)."""
    waiting = OutboundPDU.objects.filter(destination=destination, txn_id__isnull=True)
    failing_long = (
        destination.failing_since_ts is not None
        and now_ms() - destination.failing_since_ts >= CATCH_UP_AFTER_MS
    )
    if not failing_long and not waiting[CATCH_UP_BACKLOG : CATCH_UP_BACKLOG + 1].exists():
        return
    newest = waiting.values("room_id").annotate(newest=Max("id")).values_list("newest", flat=True)
    dropped, _ = waiting.exclude(id__in=list(newest)).delete()
    stale, _ = OutboundEDU.objects.filter(
        destination=destination, txn_id__isnull=True, edu_type__in=STALE_EDU_TYPES
    ).delete()
    if dropped or stale:
        logger.info(
            "Catching up %s: %d queued PDUs replaced by the newest of their rooms, "
            "%d stale EDUs dropped",
            destination.server_name,
            dropped,
            stale,
        )


def _failed(destination: Destination, token: str, reason: str) -> bool:
    """Back off: the transaction stays in flight, to be sent again when the delay is over."""
    now = now_ms()
    delay = min(max(destination.retry_delay_ms * 2, INITIAL_BACKOFF_MS), MAX_BACKOFF_MS)
    failing_since = destination.failing_since_ts or now
    logger.info(
        "Transaction %s to %s failed (%s); retrying in %d s",
        destination.txn_id,
        destination.server_name,
        reason,
        delay // 1000,
    )
    Destination.objects.filter(pk=destination.pk, lease_token=token).update(
        failures=destination.failures + 1,
        failing_since_ts=failing_since,
        retry_delay_ms=delay,
        retry_at_ts=now + delay,
        last_error=reason[:1000],
    )
    destination.failures += 1
    destination.failing_since_ts = failing_since
    destination.retry_delay_ms = delay
    destination.retry_at_ts = now + delay
    _catch_up_if_behind(destination)
    return False


def _log_pdu_errors(destination: Destination, body: bytes) -> None:
    """The server accepted the transaction; any PDU it could not process is its business
    (spec: the 200 stands "even in the event of one or more PDUs failing"), logged."""
    try:
        results = json.loads(body.decode("utf-8")).get("pdus", {})
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return
    if not isinstance(results, dict):
        return
    for event_id, outcome in results.items():
        if isinstance(outcome, dict) and outcome.get("error"):
            logger.info(
                "%s did not accept %s: %s", destination.server_name, event_id, outcome["error"]
            )


# --- Operators and the sweep -------------------------------------------------------------


def do_retry_now(server_names: Iterable[str]) -> int:
    """End the backoff of ``server_names`` and start a run for each (the admin's "retry
    now"). The failure count stays, so a further failure backs off from where it was."""
    names = list(server_names)
    count = Destination.objects.filter(server_name__in=names).update(retry_at_ts=None)
    transaction.on_commit(lambda: kick(names))
    return count


def do_reset_backoff(server_name: str) -> None:
    """Forget a destination's failures and start a run now (Synapse's admin
    ``reset_connection``): its next failure backs off from the first delay again."""
    Destination.objects.filter(server_name=server_name).update(
        failures=0, failing_since_ts=None, retry_delay_ms=0, retry_at_ts=None
    )
    transaction.on_commit(lambda: kick([server_name]))


def destinations_to_resume() -> list[str]:
    """Destinations with queued items, not in backoff and not being sent to: their kick
    was lost (a worker died, the broker was down), their retry was, or it is due (a lease
    whose holder was a process of this host that is gone does not hold them back)."""
    now = now_ms()
    queued = Exists(OutboundPDU.objects.filter(destination=OuterRef("pk"))) | Exists(
        OutboundEDU.objects.filter(destination=OuterRef("pk"))
    )
    rows = (
        Destination.objects.filter(queued)
        .filter(_due(now))
        .order_by("server_name")
        .values_list("server_name", "lease_token", "lease_until_ts")
    )
    return [name for name, token, until in rows if leases.is_free(token, until, now)]
