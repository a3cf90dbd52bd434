"""Operators see the keys Trellis holds for other servers, read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.test import Client, RequestFactory

from accounts.models import User
from federation import outbound
from federation.auth import authenticate_request
from federation.models import Destination, InboundPdu, InboundTransaction, RemoteServerKey
from operators.models import AuditEntry
from protocol.events import Event
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from tests.federation.helpers import CAROL, FakeServer
from tests.federation.inbox import Inbox, inbox

__all__ = ["inbox"]

CHANGELIST = "/admin/federation/remoteserverkey/"


@pytest.fixture
def operator(db: None) -> Client:
    User.objects.create_superuser("operator", "secret-password")
    client = Client()
    assert client.login(username="operator", password="secret-password")
    return client


def test_the_admin_lists_fetched_keys(operator: Client, carol: FakeServer) -> None:
    uri = "/_matrix/federation/v1/media/download/x"
    request = RequestFactory().get(uri, headers={"Authorization": carol.authorization("GET", uri)})
    authenticate_request(request)

    listing = operator.get(CHANGELIST)
    # The row's own key: on PostgreSQL IDs are not handed out again after a rollback.
    key = RemoteServerKey.objects.get(server_name=CAROL, key_id="ed25519:carol1")
    detail = operator.get(f"{CHANGELIST}{key.pk}/change/")

    assert listing.status_code == 200
    assert CAROL in listing.content.decode()
    assert "ed25519:carol1" in listing.content.decode()
    assert detail.status_code == 200


DESTINATIONS = "/admin/federation/destination/"


def test_the_admin_lists_destinations_and_retries_one_now(
    operator: Client, inbox: Inbox, django_capture_on_commit_callbacks: Any
) -> None:
    inbox.status[CAROL] = None
    event = Event(
        {
            "type": "m.room.message",
            "room_id": "!room:example.org",
            "sender": f"@alice:{settings.SERVER_NAME}",
            "content": {"body": "hi"},
            "origin_server_ts": 1,
            "depth": 1,
            "prev_events": [],
            "auth_events": [],
        },
        KNOWN_ROOM_VERSIONS["11"],
    )
    outbound.enqueue_pdu(event, [CAROL])
    outbound.enqueue_edu("m.receipt", {}, CAROL)
    outbound.send_pending(CAROL)
    destination = Destination.objects.get(server_name=CAROL)
    assert destination.retry_at_ts is not None

    listing = operator.get(DESTINATIONS)
    html = listing.content.decode()
    assert listing.status_code == 200
    assert CAROL in html
    assert "connection refused" in html
    assert "5 s, next attempt" in html
    assert '<td class="field-queued_pdus">1</td>' in html
    assert '<td class="field-queued_edus">1</td>' in html

    inbox.status[CAROL] = 200
    with django_capture_on_commit_callbacks(execute=True):
        retried = operator.post(
            DESTINATIONS, {"action": "retry_now", "_selected_action": [destination.pk]}
        )

    assert retried.status_code == 302
    # Its backoff ended, and the run it started found carol back.
    destination.refresh_from_db()
    assert destination.retry_at_ts is None
    assert destination.last_success_ts is not None
    assert inbox.received(CAROL) == [event.event_id]
    assert not Destination.objects.filter(pdus__isnull=False).exists()
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.change_message) == (
        str(destination.pk),
        "Retried now (backoff ended).",
    )
    (audited,) = AuditEntry.objects.all()
    assert (audited.action, audited.target, audited.via) == ("destination.reset", CAROL, "portal")


TRANSACTIONS = "/admin/federation/inboundtransaction/"


def test_inbound_transactions_are_shown_with_each_pdus_result(operator: Client) -> None:
    txn = InboundTransaction.objects.create(
        origin=CAROL,
        txn_id="t1",
        body={"pdus": [{}, {}], "edus": [{"edu_type": "m.typing", "content": {}}]},
        received_ts=1_700_000_000_000,
        response={"pdus": {}},
    )
    InboundPdu.objects.create(
        transaction=txn,
        origin=CAROL,
        room_id="!r:carol",
        event_id="$good",
        pdu={},
        result={},
        processed_ts=1_700_000_000_500,
    )
    InboundPdu.objects.create(
        transaction=txn,
        origin=CAROL,
        room_id="!r:carol",
        event_id="$bad",
        pdu={},
        result={"error": "auth events refuse it"},
        processed_ts=1_700_000_000_500,
    )
    other = InboundTransaction.objects.create(
        origin="dave.example", txn_id="t9", body={"pdus": []}, received_ts=1, response={}
    )
    InboundPdu.objects.create(
        transaction=other, origin="dave.example", room_id="!r:carol", event_id="$waiting", pdu={}
    )

    listing = operator.get(TRANSACTIONS).content.decode()
    failed = operator.get(TRANSACTIONS, {"pdus": "failed"}).content.decode()
    pending = operator.get(TRANSACTIONS, {"pdus": "pending"}).content.decode()
    searched = operator.get(TRANSACTIONS, {"q": "$waiting"}).content.decode()
    detail = operator.get(f"{TRANSACTIONS}{txn.pk}/change/").content.decode()

    assert CAROL in listing
    assert "2023-11-14 22:13:20" in listing
    assert '<td class="field-pdu_count">2</td>' in listing
    assert '<td class="field-failed_pdus">1</td>' in listing
    assert '<td class="field-edu_count">1</td>' in listing
    assert CAROL in failed
    assert "dave.example" not in failed
    assert "dave.example" in pending
    assert CAROL not in pending
    assert "dave.example" in searched
    assert CAROL not in searched
    assert "error: auth events refuse it" in detail
    assert "accepted" in detail
    # Read-only: nothing to save, add or delete.
    assert 'name="_save"' not in detail
    assert operator.get(f"{TRANSACTIONS}add/").status_code == 403
    assert operator.get(f"{TRANSACTIONS}{txn.pk}/delete/").status_code == 403
