"""Transactions other servers send us (PUT /_matrix/federation/v1/send/{txnId}).

Server-Server API, "Transactions": at most 50 PDUs and 100 EDUs; idempotent per origin
and transaction ID. What a server sent is stored (federation.models.InboundTransaction)
before any of it is processed, and the answer stored with it once processed: a retry
of a processed transaction is answered from the store, one whose processing was cut
short is processed again (every step of the PDU pipeline is safe to run twice).

Each PDU goes through rooms.services.incoming.receive_pdu, with the origin as the source
of what the PDU is missing. A PDU is refused with an error in its result, nothing of it
stored, when its sender is not a user of the origin or the room's ACL denies the origin.
PDUs of rooms unknown here are dropped without a result, as their event IDs (which
depend on the room version) cannot be told.

The PDUs are processed in the request, before it is answered (not yet in a Celery task
per room).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from federation.event_source import FederationEventSource
from federation.models import InboundTransaction
from protocol.errors import MatrixError, bad_json
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.federation.access import is_server_allowed
from rooms.models import Room
from rooms.services.incoming import EventSource, receive_pdu

logger = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100


def check_transaction(body: Mapping[str, Any]) -> None:
    """The transaction's shape and limits: 400 M_BAD_JSON for more than MAX_PDUS PDUs or
    MAX_EDUS EDUs, or lists that are not lists."""
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise bad_json("'pdus' must be an array")
    if not isinstance(edus, list):
        raise bad_json("'edus' must be an array")
    if len(pdus) > MAX_PDUS:
        raise bad_json(f"A transaction carries at most {MAX_PDUS} PDUs")
    if len(edus) > MAX_EDUS:
        raise bad_json(f"A transaction carries at most {MAX_EDUS} EDUs")


def do_store_transaction(origin: str, txn_id: str, body: Mapping[str, Any]) -> InboundTransaction:
    """Store the transaction (committed before anything else happens), or return the one
    stored already under (origin, txn_id)."""
    stored = InboundTransaction.objects.filter(origin=origin, txn_id=txn_id).first()
    if stored is not None:
        return stored
    try:
        with transaction.atomic():
            return InboundTransaction.objects.create(
                origin=origin, txn_id=txn_id, body=dict(body), received_ts=now_ms()
            )
    except IntegrityError:
        # The same transaction, retried while the first attempt was being stored.
        return InboundTransaction.objects.get(origin=origin, txn_id=txn_id)


def do_receive_transaction(
    origin: str,
    txn_id: str,
    body: Mapping[str, Any],
    *,
    source: EventSource | None = None,
) -> dict[str, Any]:
    """Store, process and answer a transaction (see the module's docstring); the answer
    is the stored one when the transaction was processed before."""
    check_transaction(body)
    stored = do_store_transaction(origin, txn_id, body)
    if stored.response is not None:
        return dict(stored.response)
    return do_process_transaction(stored, source=source)


def do_process_transaction(
    stored: InboundTransaction, *, source: EventSource | None = None
) -> dict[str, Any]:
    """Run each PDU of a stored transaction through the pipeline and store the answer."""
    origin = stored.origin
    source = source if source is not None else FederationEventSource(origin)
    results: dict[str, dict[str, Any]] = {}
    for pdu in stored.body.get("pdus", []):
        found = _event_id_of(pdu)
        if found is None:
            continue
        event_id, room = found
        results[event_id] = _receive(pdu, room, origin, source)
    response = {"pdus": results}
    InboundTransaction.objects.filter(pk=stored.pk).update(
        response=response, processed_ts=now_ms()
    )
    return response


def _event_id_of(pdu: Any) -> tuple[str, Room] | None:
    """The PDU's event ID and room, if its room is known here (else it is dropped)."""
    if not isinstance(pdu, dict) or not isinstance(pdu.get("room_id"), str):
        logger.info("dropped a PDU without a room ID")
        return None
    room = Room.objects.filter(room_id=pdu["room_id"]).first()
    if room is None:
        logger.info("dropped a PDU for unknown room %s", pdu["room_id"])
        return None
    try:
        event_id = PDUEvent(pdu, KNOWN_ROOM_VERSIONS[room.room_version]).event_id
    except (EventFormatError, ValueError, KeyError, TypeError) as exc:
        logger.info("dropped a PDU of %s whose event ID cannot be had: %s", room.room_id, exc)
        return None
    return event_id, room


def _receive(pdu: dict[str, Any], room: Room, origin: str, source: EventSource) -> dict[str, Any]:
    """One PDU's result: {} when it was handled, {"error": ...} when it was not."""
    sender = pdu.get("sender")
    if not isinstance(sender, str) or sender.partition(":")[2] != origin:
        return {"error": f"The sender is not a user of {origin}"}
    if not is_server_allowed(room, origin):
        return {"error": f"{origin} is denied by the room's server ACL"}
    try:
        row = receive_pdu(pdu, origin=origin, source=source)
    except MatrixError as exc:
        # InvalidPDU: dropped, nothing of it stored.
        logger.info("PDU from %s refused: %s", origin, exc.error)
        return {"error": exc.error}
    if row.rejected_reason is not None:
        return {"error": f"Rejected: {row.rejected_reason}"}
    return {}
