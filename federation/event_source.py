"""Another server as the source of events a PDU it sent is missing (the EventSource of
rooms.services.incoming, over the signing client): GET /event and GET /state_ids; and of
a room's history before what is stored here: GET /backfill.

Room-agnostic: what comes back is only parsed here; the pipeline checks every PDU's
signatures, hashes and room before it keeps any.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings

from federation.client import FederationError, request_json

logger = logging.getLogger(__name__)

PREFIX = "/_matrix/federation/v1"
# At most this many events are asked for one by one in one call of get_events.
MAX_EVENTS_PER_CALL = 100


def _path_segment(value: str) -> str:
    return quote(value, safe="")


class FederationEventSource:
    """Missing events and state, asked of ``destination`` (the server that sent the PDU).

    ``deadline`` (a ``time.monotonic()`` value): no request is sent after it, and none
    waits past it, for callers that answer a client meanwhile (backfill for /messages):
    get_events then gives what it has, get_state_ids and backfill raise FederationError.
    """

    def __init__(self, destination: str, *, deadline: float | None = None) -> None:
        self.destination = destination
        self.deadline = deadline

    def _timeout_s(self) -> float | None:
        """The timeout of the next request: None for the client's default; FederationError
        once the deadline has passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise FederationError(f"out of time for requests to {self.destination}")
        return min(left, settings.FEDERATION_TIMEOUT_S)

    def get_events(self, room_id: str, event_ids: list[str]) -> list[dict[str, Any]]:
        """GET /event/{eventId} for each ID (at most MAX_EVENTS_PER_CALL); the PDUs the
        server answered with. One it cannot give is left out, as the pipeline expects."""
        found: list[dict[str, Any]] = []
        for event_id in event_ids[:MAX_EVENTS_PER_CALL]:
            path = f"{PREFIX}/event/{_path_segment(event_id)}"
            try:
                answer = request_json(self.destination, "GET", path, timeout_s=self._timeout_s())
            except FederationError as exc:
                logger.info("event %s from %s: %s", event_id, self.destination, exc)
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    break
                continue
            pdus = answer.get("pdus") if isinstance(answer, dict) else None
            if not isinstance(pdus, list):
                logger.info("event %s from %s: no pdus in the answer", event_id, self.destination)
                continue
            found.extend(pdu for pdu in pdus[:1] if isinstance(pdu, dict))
        return found

    def get_missing_events(
        self, room_id: str, earliest: list[str], latest: list[str], limit: int
    ) -> list[dict[str, Any]]:
        """POST /get_missing_events/{roomId}: the events before ``latest`` back to
        ``earliest`` (at most ``limit``), as the server answers; none when it cannot
        (the caller then asks for events one by one)."""
        path = f"{PREFIX}/get_missing_events/{_path_segment(room_id)}"
        body = {"earliest_events": earliest, "latest_events": latest, "limit": limit}
        try:
            answer = request_json(
                self.destination, "POST", path, content=body, timeout_s=self._timeout_s()
            )
        except FederationError as exc:
            logger.info("missing events of %s from %s: %s", room_id, self.destination, exc)
            return []
        events = answer.get("events") if isinstance(answer, dict) else None
        if not isinstance(events, list):
            return []
        return [pdu for pdu in events[:limit] if isinstance(pdu, dict)]

    def get_state_ids(self, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        """GET /state_ids/{roomId}?event_id=: the state before the event and its auth
        chain, as event IDs. Raises FederationError when there is no usable answer."""
        query = urlencode({"event_id": event_id})
        path = f"{PREFIX}/state_ids/{_path_segment(room_id)}?{query}"
        answer = request_json(self.destination, "GET", path, timeout_s=self._timeout_s())
        if not isinstance(answer, dict):
            raise FederationError(f"{self.destination} answered /state_ids with no object")
        pdu_ids = answer.get("pdu_ids")
        chain_ids = answer.get("auth_chain_ids")
        if not isinstance(pdu_ids, list) or not isinstance(chain_ids, list):
            raise FederationError(f"{self.destination} answered /state_ids without its lists")
        return (
            [e for e in pdu_ids if isinstance(e, str)],
            [e for e in chain_ids if isinstance(e, str)],
        )

    def backfill(self, room_id: str, event_ids: list[str], limit: int) -> list[dict[str, Any]]:
        """GET /backfill/{roomId}?v=...&limit=: the events ``event_ids`` and those before
        them, as the server answers (at most ``limit`` of its PDUs are kept). Raises
        FederationError when there is no usable answer."""
        query = urlencode([*(("v", event_id) for event_id in event_ids), ("limit", limit)])
        path = f"{PREFIX}/backfill/{_path_segment(room_id)}?{query}"
        answer = request_json(self.destination, "GET", path, timeout_s=self._timeout_s())
        pdus = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(pdus, list):
            raise FederationError(f"{self.destination} answered /backfill without its pdus")
        return [pdu for pdu in pdus[:limit] if isinstance(pdu, dict)]
