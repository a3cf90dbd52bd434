"""Reporting content (Client-Server API, "Reporting Content") to this server's operators.

Reports land in ``EventReport`` rows, which operators read and resolve in the admin.
"""

from __future__ import annotations

from collections.abc import Iterable

from accounts.selectors import local_user
from protocol.errors import MatrixError, invalid_param, not_found
from protocol.identifiers import check_bounded
from rooms import selectors
from rooms.models import EventReport, Room

# The spec sets no limit on a report's reason; continuwuity refuses one over 750 bytes
# with M_INVALID_PARAM, and so does this server.
MAX_REASON_BYTES = 750
# The removed (v1.18) ``score`` ran from -100 (most offensive) to 0 (inoffensive).
MIN_SCORE, MAX_SCORE = -100, 0


def check_reason(reason: str | None) -> None:
    if reason is not None:
        check_bounded(reason, "'reason'", limit=MAX_REASON_BYTES)


def do_report_event(
    room_id: str, event_id: str, reporter: str, reason: str | None, score: int | None
) -> EventReport:
    """POST /rooms/{roomId}/report/{eventId}.

    The reporter must be joined to the room now (since v1.8) and able to see the event;
    otherwise the answer is the same 404 as for an unknown event, so that reports do not
    reveal what the reporter cannot see.
    """
    if score is not None and not MIN_SCORE <= score <= MAX_SCORE:
        raise invalid_param("'score' must be between -100 and 0")
    check_reason(reason)
    unknown = not_found("The event was not found or you are not joined to the room")
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise unknown
    row = selectors.membership_row(room, reporter)
    if row is None or row.membership != "join":
        raise unknown
    try:
        selectors.get_event_for_user(room, event_id, reporter)
    except MatrixError:
        raise unknown from None
    return EventReport.objects.create(
        room_id=room.room_id,
        event_id=event_id,
        reporter=reporter,
        reason=reason or "",
        score=score,
    )


def do_report_room(room_id: str, reporter: str, reason: str) -> EventReport:
    """POST /rooms/{roomId}/report: any user may report a room this server knows, joined
    or not (since v1.13 servers MUST NOT require membership)."""
    check_reason(reason)
    if not Room.objects.filter(room_id=room_id).exists():
        raise not_found("The room was not found")
    return EventReport.objects.create(room_id=room_id, reporter=reporter, reason=reason)


def do_report_user(user_id: str, reporter: str, reason: str) -> EventReport:
    """POST /users/{userId}/report: a report of a user of this server (the reporter need
    not share a room with them); 404 for a user this server does not have."""
    if local_user(user_id) is None:
        raise not_found("The user was not found")
    return EventReport.objects.create(user_id=user_id, reporter=reporter, reason=reason)


def do_resolve_reports(report_ids: Iterable[int]) -> int:
    """Mark reports handled (the admin's "resolve" action); returns how many changed."""
    return EventReport.objects.filter(pk__in=list(report_ids), resolved=False).update(
        resolved=True
    )
