"""The report queue: operators take reports, act on what was reported, resolve them.

Acting on a report in a room (redacting the reported event, banning its sender) is done
as a user of this server who has the power to do it in that room, the room's own
moderator here (the server has no power of its own inside a room); when the room has
no such user, the action is refused with M_FORBIDDEN and the operator can first make a
local user room admin.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from operators.models import ReportAssignment
from operators.services import audit
from protocol import auth_rules
from protocol.errors import MatrixError
from rooms.models import Event, EventReport, Membership, Room
from rooms.services.events import SendContext, auth_state_for, room_version_of
from rooms.services.membership import do_update_membership, is_local_user
from rooms.services.redaction import do_redact
from rooms.state import load_state


def _report(report_id: int) -> EventReport:
    report = EventReport.objects.filter(pk=report_id).first()
    if report is None:
        raise MatrixError("M_NOT_FOUND", "No such report", status=404)
    return report


def assign_report(
    report_id: int, assignee: str, *, actor: str, via: str = "api", ip: str = ""
) -> ReportAssignment:
    """Give the report to the operator ``assignee`` (a Matrix user ID; "" to release it)."""
    with transaction.atomic():
        report = _report(report_id)
        assignment, _ = ReportAssignment.objects.get_or_create(report=report)
        assignment.assigned_to = assignee
        assignment.assigned_at = timezone.now() if assignee else None
        assignment.save(update_fields=["assigned_to", "assigned_at"])
        audit.record(actor, "report.assign", str(report.pk), via=via, ip=ip, assigned_to=assignee)
    return assignment


def record_resolution(report_id: int, resolver: str) -> None:
    """Remember which operator resolved the report (with the resolution itself)."""
    ReportAssignment.objects.update_or_create(
        report_id=report_id, defaults={"resolved_by": resolver, "resolved_at": timezone.now()}
    )


def room_moderator(room_id: str, level_name: str) -> str:
    """A user of this server joined to the room whose power level reaches the room's
    ``level_name`` level ("redact", "ban"), the most powerful first."""
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise MatrixError("M_NOT_FOUND", "Unknown room", status=404)
    room_version = room_version_of(room)
    state = dict(load_state(room.current_state_group_id))
    joined = [
        user_id
        for user_id in Membership.objects.filter(room=room, membership="join").values_list(
            "user_id", flat=True
        )
        if is_local_user(user_id)
    ]
    auth_state = auth_state_for(
        room_version, state, {("m.room.power_levels", "")} | {("m.room.member", u) for u in joined}
    )
    needed = auth_rules.get_named_level(room_version, auth_state, level_name)
    ranked = sorted(
        ((auth_rules.get_user_power_level(room_version, u, auth_state), u) for u in joined),
        reverse=True,
    )
    for level, user_id in ranked:
        if level >= needed:
            return user_id
    raise MatrixError(
        "M_FORBIDDEN",
        f"No user of this server in {room_id} may {level_name} there: make one room admin first",
    )


def _reported_event(report: EventReport) -> Event:
    event = Event.objects.filter(event_id=report.event_id).select_related("room").first()
    if not report.event_id or event is None:
        raise MatrixError("M_NOT_FOUND", "The report is not about an event stored here")
    return event


def redact_reported_event(
    report_id: int, *, actor: str, via: str = "api", ip: str = "", reason: str = ""
) -> Event:
    """Redact the reported event, as the room's most powerful local moderator."""
    report = _report(report_id)
    event = _reported_event(report)
    moderator = room_moderator(event.room.room_id, "redact")
    with transaction.atomic():
        redaction = do_redact(
            event.room.room_id, SendContext(sender=moderator), event.event_id, reason or None
        )
        audit.record(
            actor,
            "report.redact_event",
            event.event_id,
            via=via,
            ip=ip,
            report=report.pk,
            room_id=event.room.room_id,
            redacted_as=moderator,
            redaction=redaction.event_id,
        )
    return redaction


def ban_reported_sender(
    report_id: int, *, actor: str, via: str = "api", ip: str = "", reason: str = ""
) -> Event:
    """Ban the reported event's sender from its room, as the room's most powerful local
    moderator."""
    report = _report(report_id)
    event = _reported_event(report)
    moderator = room_moderator(event.room.room_id, "ban")
    with transaction.atomic():
        ban = do_update_membership(
            event.room.room_id,
            SendContext(sender=moderator),
            event.sender,
            "ban",
            reason=reason or None,
        )
        audit.record(
            actor,
            "report.ban_sender",
            event.sender,
            via=via,
            ip=ip,
            report=report.pk,
            room_id=event.room.room_id,
            banned_as=moderator,
            ban=ban.event_id,
        )
    return ban
