"""The outbound queue (federation.outbound): what is queued for a server reaches it in
transactions of at most 50 PDUs and 100 EDUs, in order, one at a time, signed; a server
that fails is backed off and sent the same transaction again when it returns; a run that
dies mid-send loses nothing.

carol's PUT /send/{txnId} is played by ``Inbox`` on the fake network: it checks the X-Matrix
signature of every request and records the transactions it was sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from federation import leases, outbound, tasks
from federation.models import Destination, OutboundEDU, OutboundPDU
from protocol.events import Event
from tests.federation.helpers import CAROL, network
from tests.federation.inbox import DAVE, V11, Inbox, inbox

__all__ = ["inbox", "network"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    now = [1_800_000_000_000]
    monkeypatch.setattr(outbound, "now_ms", lambda: now[0])
    return now


_counter = iter(range(1_000_000))


def message(room: str = "!room:example.org", body: str | None = None) -> Event:
    n = next(_counter)
    pdu = {
        "type": "m.room.message",
        "room_id": room,
        "sender": f"@alice:{settings.SERVER_NAME}",
        "content": {"msgtype": "m.text", "body": body or f"message {n}"},
        "origin_server_ts": 1_700_000_000_000 + n,
        "depth": n + 1,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
    }
    return Event(pdu, V11)


def queue(*events: Event, to: tuple[str, ...] = (CAROL,)) -> None:
    for event in events:
        outbound.enqueue_pdu(event, to)


def depth(server: str = CAROL) -> int:
    return OutboundPDU.objects.filter(destination__server_name=server).count()


def test_queued_pdus_and_edus_arrive_in_order_in_signed_transactions(
    db: None, inbox: Inbox
) -> None:
    events = [message() for _ in range(3)]
    queue(*events)
    outbound.enqueue_edu("m.receipt", {"n": 1}, CAROL)
    outbound.enqueue_edu("m.typing", {"n": 2}, CAROL)

    result = outbound.send_pending(CAROL)

    assert result.sent == 1
    [(server, _txn_id, body)] = inbox.requests
    assert server == CAROL
    assert body["origin"] == settings.SERVER_NAME
    assert body["pdus"] == [e.pdu for e in events]
    assert body["edus"] == [
        {"edu_type": "m.receipt", "content": {"n": 1}},
        {"edu_type": "m.typing", "content": {"n": 2}},
    ]
    # Acknowledged: nothing is left, and the destination notes its success.
    assert depth() == 0
    assert not OutboundEDU.objects.exists()
    destination = Destination.objects.get(server_name=CAROL)
    assert destination.txn_id is None
    assert destination.last_success_ts is not None


def test_transactions_hold_at_most_50_pdus_and_100_edus_in_queue_order(
    db: None, inbox: Inbox
) -> None:
    events = [message() for _ in range(120)]
    queue(*events)
    for n in range(130):
        outbound.enqueue_edu("m.receipt", {"n": n}, CAROL)

    result = outbound.send_pending(CAROL)

    assert result.sent == 3
    sizes = [(len(b["pdus"]), len(b.get("edus", []))) for _, _, b in inbox.requests]
    assert sizes == [(50, 100), (50, 30), (20, 0)]
    assert inbox.received() == [e.event_id for e in events]
    edus = [edu["content"]["n"] for _, _, b in inbox.requests for edu in b.get("edus", [])]
    assert edus == list(range(130))
    # Every transaction has its own ID.
    assert len({txn_id for _, txn_id, _ in inbox.requests}) == 3


def test_each_destination_has_its_own_queue_and_this_server_none(db: None, inbox: Inbox) -> None:
    first, second = message(), message()
    queue(first, to=(CAROL, DAVE, settings.SERVER_NAME))
    queue(second, to=(DAVE,))
    # Queued twice for the same server: sent once.
    queue(first, to=(CAROL,))

    outbound.send_pending(CAROL)
    outbound.send_pending(DAVE)

    assert inbox.received(CAROL) == [first.event_id]
    assert inbox.received(DAVE) == [first.event_id, second.event_id]
    assert not Destination.objects.filter(server_name=settings.SERVER_NAME).exists()


def test_one_transaction_in_flight_per_destination(db: None, inbox: Inbox) -> None:
    queue(*[message() for _ in range(60)])
    nested: list[outbound.RunResult] = []
    # A second run starts while the first one's request is on the wire.
    inbox.on_request = lambda: nested.append(outbound.send_pending(CAROL)) if not nested else None

    result = outbound.send_pending(CAROL)

    assert nested == [outbound.RunResult()]
    assert result.sent == 2
    assert len(inbox.requests) == 2
    assert depth() == 0


def test_a_failing_server_is_backed_off_then_sent_the_same_transaction(
    db: None, inbox: Inbox, clock: list[int]
) -> None:
    events = [message() for _ in range(3)]
    queue(*events)
    inbox.status[CAROL] = 503

    first = outbound.send_pending(CAROL)
    # Within the backoff nothing is sent, however often a run is started.
    clock[0] += 4_000
    early = outbound.send_pending(CAROL)
    queue(message())
    clock[0] += 1_000
    second = outbound.send_pending(CAROL)
    clock[0] += 10_000
    third = outbound.send_pending(CAROL)

    assert (first.retry_in_ms, early, second.retry_in_ms, third.retry_in_ms) == (
        5_000,
        outbound.RunResult(),
        10_000,
        20_000,
    )
    assert len(inbox.requests) == 3
    # The same transaction (ID and content) each time: the receiver may have handled it.
    assert len({txn_id for _, txn_id, _ in inbox.requests}) == 1
    assert len({json.dumps(b["pdus"]) for _, _, b in inbox.requests}) == 1
    destination = Destination.objects.get(server_name=CAROL)
    assert destination.failures == 3
    assert destination.last_error == "answered 503"
    assert destination.retry_at_ts == clock[0] + 20_000

    # It recovers: the transaction in flight goes first, then what was queued since.
    inbox.status[CAROL] = 200
    clock[0] += 20_000
    recovered = outbound.send_pending(CAROL)

    assert recovered.sent == 2
    assert inbox.requests[3][1] == inbox.requests[0][1]
    assert inbox.received()[:3] == [e.event_id for e in events]
    assert len(inbox.received()) == 4
    destination.refresh_from_db()
    assert (destination.failures, destination.retry_at_ts, destination.last_error) == (0, None, "")


def test_the_backoff_stops_doubling_at_an_hour(db: None, inbox: Inbox, clock: list[int]) -> None:
    queue(message())
    inbox.status[CAROL] = None
    delays = []
    for _ in range(14):
        delays.append(outbound.send_pending(CAROL).retry_in_ms)
        clock[0] += outbound.MAX_BACKOFF_MS

    assert delays[:3] == [5_000, 10_000, 20_000]
    assert delays[-1] == outbound.MAX_BACKOFF_MS
    assert max(d or 0 for d in delays) == outbound.MAX_BACKOFF_MS


def test_a_run_that_died_mid_send_is_resumed_by_the_sweep_with_the_same_txn_id(
    db: None, inbox: Inbox, clock: list[int]
) -> None:
    events = [message() for _ in range(2)]
    queue(*events)

    class WorkerDied(Exception):
        pass

    def die() -> None:
        raise WorkerDied

    inbox.on_request = die
    with pytest.raises(WorkerDied):
        outbound.send_pending(CAROL)
    # What a killed worker leaves: its lease (the release never ran).
    Destination.objects.filter(server_name=CAROL).update(
        lease_token="dead-worker", lease_until_ts=clock[0] + outbound.LEASE_MS
    )
    inbox.on_request = None

    assert depth() == 2
    assert outbound.destinations_to_resume() == []
    assert outbound.send_pending(CAROL) == outbound.RunResult()

    clock[0] += outbound.LEASE_MS + 1
    assert outbound.destinations_to_resume() == [CAROL]
    assert tasks.resume_destinations() == 1

    assert len(inbox.requests) == 2
    assert inbox.requests[0][1] == inbox.requests[1][1]
    assert inbox.received() == [e.event_id for e in events]
    assert depth() == 0
    assert outbound.destinations_to_resume() == []


def test_a_lease_of_a_worker_of_this_host_that_died_is_taken_over_at_once(
    db: None, inbox: Inbox, clock: list[int]
) -> None:
    """A killed worker's lease names a process of this host that is gone: the next run
    and the sweep take the destination at once, not when the lease expires."""
    events = [message(body="one")]
    for event in events:
        queue(event)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, _pid, lifetime, nonce = leases.new_token().split(":")
    Destination.objects.filter(server_name=CAROL).update(
        lease_token=f"{host}:{dead.pid}:{lifetime}:{nonce}",
        lease_until_ts=clock[0] + outbound.LEASE_MS,
    )

    assert outbound.destinations_to_resume() == [CAROL]
    assert outbound.send_pending(CAROL).sent == 1
    assert inbox.received() == [e.event_id for e in events]


def test_the_task_retries_a_failed_destination_when_its_backoff_is_over(
    db: None, inbox: Inbox, clock: list[int]
) -> None:
    queue(message())
    inbox.status[CAROL] = 500

    # Celery runs eagerly in tests: the scheduled retry runs at once and finds the
    # backoff not over, so it sends nothing.
    tasks.send_to(CAROL)

    assert len(inbox.requests) == 1
    assert outbound.destinations_to_resume() == []
    clock[0] += 5_000
    assert outbound.destinations_to_resume() == [CAROL]


def test_enqueued_items_are_stored_with_the_transaction_and_sent_after_its_commit(
    db: None, inbox: Inbox, django_capture_on_commit_callbacks: Any
) -> None:
    event = message()

    def send_that_fails() -> None:
        with transaction.atomic():
            queue(event)
            raise RuntimeError("the send failed")

    with pytest.raises(RuntimeError):
        send_that_fails()

    assert depth() == 0

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queue(event)
        assert inbox.requests == []
    assert len(callbacks) == 1
    assert inbox.received() == [event.event_id]


def test_catch_up_keeps_the_newest_pdu_of_each_room_for_a_long_failing_server(
    db: None, inbox: Inbox, clock: list[int]
) -> None:
    in_flight = [message("!a:example.org") for _ in range(2)]
    queue(*in_flight)
    inbox.status[CAROL] = None
    outbound.send_pending(CAROL)
    later_a = [message("!a:example.org") for _ in range(5)]
    later_b = [message("!b:example.org") for _ in range(3)]
    queue(*later_a, *later_b)
    outbound.enqueue_edu("m.typing", {"typing": True}, CAROL)
    outbound.enqueue_edu("m.receipt", {"r": 1}, CAROL)

    # Failing for more than CATCH_UP_AFTER_MS: the next failure compacts the queue.
    clock[0] += outbound.CATCH_UP_AFTER_MS + 1
    Destination.objects.filter(server_name=CAROL).update(retry_at_ts=None)
    outbound.send_pending(CAROL)
    inbox.status[CAROL] = 200
    Destination.objects.filter(server_name=CAROL).update(retry_at_ts=None)
    outbound.send_pending(CAROL)

    # The transaction in flight is sent unchanged, then the newest event of each room.
    assert inbox.received() == [
        *(e.event_id for e in in_flight),
        later_a[-1].event_id,
        later_b[-1].event_id,
    ]
    edus = [edu["edu_type"] for _, _, b in inbox.requests for edu in b.get("edus", [])]
    assert "m.typing" not in edus
    assert "m.receipt" in edus
    assert depth() == 0


def test_a_huge_backlog_is_caught_up_even_without_failures(
    db: None, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound, "CATCH_UP_BACKLOG", 5)
    events = [message(f"!r{n % 2}:example.org") for n in range(8)]
    queue(*events)

    outbound.send_pending(CAROL)

    assert inbox.received() == [events[-2].event_id, events[-1].event_id]


def test_an_item_queued_as_a_run_ends_is_sent_by_that_run(
    db: None, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, late = message(), message()
    queue(first)
    release = outbound._release
    kicked: list[outbound.RunResult] = []

    def release_after_a_late_send(destination: Destination, token: str) -> None:
        if not kicked:
            # Queued and kicked after the run found the queue empty, before it let go:
            # the kick's run finds the lease taken.
            queue(late)
            kicked.append(outbound.send_pending(CAROL))
        release(destination, token)

    monkeypatch.setattr(outbound, "_release", release_after_a_late_send)
    result = outbound.send_pending(CAROL)

    assert kicked == [outbound.RunResult()]
    assert result.sent == 2
    assert inbox.received() == [first.event_id, late.event_id]


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_a_transaction_refused_for_good_is_dropped_and_the_next_one_goes(
    db: None, inbox: Inbox, clock: list[int], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A 4xx says the transaction itself is bad (Server-Server API, PUT /send): sending it
    again would get the same answer, so it is dropped, not retried hourly forever in
    front of everything queued after it."""
    events = [message() for _ in range(outbound.MAX_PDUS + 10)]
    queue(*events)
    inbox.status[CAROL] = status
    answers = iter([status, 200])

    def answer_then_accept() -> None:
        inbox.status[CAROL] = next(answers, 200)

    inbox.on_request = answer_then_accept

    result = outbound.send_pending(CAROL)

    assert result.retry_in_ms is None
    assert len(inbox.requests) == 2
    refused_id, accepted_id = (txn_id for _, txn_id, _ in inbox.requests)
    assert refused_id != accepted_id
    # The first 50 were in the refused transaction; the rest went in the next.
    assert inbox.received()[-10:] == [e.event_id for e in events[outbound.MAX_PDUS :]]
    assert depth() == 0
    destination = Destination.objects.get(server_name=CAROL)
    assert (destination.txn_id, destination.failures, destination.retry_at_ts) == (None, 0, None)
    # Said in the log (the next success clears the destination's last error).
    assert f"refused transaction {refused_id} with {status}; dropped it" in caplog.text


@pytest.mark.parametrize("status", [401, 408, 429, 500])
def test_a_transaction_refused_for_now_is_sent_again_after_the_backoff(
    db: None, inbox: Inbox, clock: list[int], status: int
) -> None:
    queue(message())
    inbox.status[CAROL] = status

    first = outbound.send_pending(CAROL)
    inbox.status[CAROL] = 200
    clock[0] += first.retry_in_ms or 0
    second = outbound.send_pending(CAROL)

    assert first.retry_in_ms == outbound.INITIAL_BACKOFF_MS
    assert second.sent == 1
    # The same transaction, delivered once the server takes it.
    assert len({txn_id for _, txn_id, _ in inbox.requests}) == 1
    assert depth() == 0
