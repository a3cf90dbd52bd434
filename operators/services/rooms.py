"""Operator actions on rooms: block, delete (a durable job), make a room admin, publish,
and the handling of event reports.

Every action writes its audit entry in the transaction that does the work. The room
deletion is an :class:`AdminJob` run by the worker (operators.tasks.delete_room); each of
its steps is safe to run again, and its progress is stored with each step, so that a job
a worker dropped is resumed by the sweep (operators.tasks.resume_room_deletions) where it
stopped, or ends ``failed`` with the reason; never half-done without a trace.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from accounts.clock import now_ms
from operators.models import AdminJob, AuditEntry
from operators.services import audit, jobs
from protocol import auth_rules
from protocol.errors import MatrixError, invalid_param
from protocol.identifiers import is_valid_user_id
from rooms.models import EventReport, Membership, Room, RoomAlias
from rooms.services import blocking, creation, directory, purge, reports
from rooms.services.events import SendContext, auth_state_for, do_send_event, room_version_of
from rooms.services.membership import (
    INVITE,
    JOIN,
    KNOCK,
    LEAVE,
    do_update_membership,
    is_local_user,
)
from rooms.state import load_state

logger = logging.getLogger(__name__)

DELETE_ROOM = "room.delete"
# Synapse's defaults for the room the members of a deleted room are moved to.
DEFAULT_NEW_ROOM_NAME = "Content Violation Notification"
# The purge waits this long after the members left, so that their clients hear of the
# leave (through /sync, woken when it committed) before the events go; the sweep
# (operators.tasks.resume_room_deletions) finishes it.
PURGE_GRACE_MS = 30_000
# A scheduled or active job without a step for this long is taken up by the sweep.
STALE_AFTER_MS = 60_000
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation will be "
    "blocked."
)


def _check_room_id(room_id: str) -> None:
    if not room_id.startswith("!") or len(room_id) > 255:
        raise invalid_param(f"{room_id!r} is not a legal room ID")


def block_room(room_id: str, block: bool, *, actor: str, via: str = "api", ip: str = "") -> bool:
    """Block (or unblock) a room, known here or not: local users may not join it."""
    _check_room_id(room_id)
    with transaction.atomic():
        if block:
            blocking.do_block_room(room_id, actor)
        else:
            blocking.do_unblock_room(room_id)
        audit.record(actor, "room.block" if block else "room.unblock", room_id, via=via, ip=ip)
    return block


# --- deletion -----------------------------------------------------------------------------


def delete_room(
    room_id: str,
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
    new_room_user_id: str | None = None,
    room_name: str | None = None,
    message: str | None = None,
    block: bool = False,
    purge: bool = True,
    force_purge: bool = False,
) -> AdminJob:
    """Start deleting a room: the job row and its audit entry, then the worker's task.

    400 for a malformed room ID or a ``new_room_user_id`` of another server, 404 for a
    room this server does not know unless it is only to be blocked, 400 while another
    deletion of the room is under way (as Synapse answers).
    """
    _check_room_id(room_id)
    if new_room_user_id is not None and not (
        is_valid_user_id(new_room_user_id) and is_local_user(new_room_user_id)
    ):
        raise invalid_param("new_room_user_id must be a user of this server")
    if not block and not Room.objects.filter(room_id=room_id).exists():
        raise MatrixError("M_NOT_FOUND", f"Unknown room id {room_id}")
    params = {
        "new_room_user_id": new_room_user_id,
        "room_name": room_name or DEFAULT_NEW_ROOM_NAME,
        "message": message or DEFAULT_MESSAGE,
        "block": block,
        "purge": purge,
        "force_purge": force_purge,
    }
    with transaction.atomic():
        running = AdminJob.objects.select_for_update().filter(
            kind=DELETE_ROOM, target=room_id, status__in=[AdminJob.SCHEDULED, AdminJob.ACTIVE]
        )
        if running.exists():
            raise MatrixError("M_UNKNOWN", "A deletion of this room is already in progress")
        job = jobs.create(DELETE_ROOM, room_id, actor, params)
        # The model's default is a UUID object until the row is read back.
        job.job_id = str(job.job_id)
        audit.record(actor, DELETE_ROOM, room_id, via=via, ip=ip, delete_id=job.job_id, **params)
        transaction.on_commit(lambda: _queue(job.job_id))
    return job


def _queue(job_id: str) -> None:
    from operators import tasks

    tasks.delete_room.delay(job_id)


def run_room_deletion(job_id: str) -> AdminJob | None:
    """Run (or resume) a room deletion job; the job as this run left it (still active
    while its purge waits), None if unknown."""
    job = AdminJob.objects.filter(job_id=job_id, kind=DELETE_ROOM).first()
    if job is None or job.status in (AdminJob.COMPLETE, AdminJob.FAILED):
        return job
    jobs.start(job)
    try:
        done = _shut_down(job)
    except Exception as exc:
        logger.warning("Room deletion %s of %s failed", job.job_id, job.target, exc_info=True)
        error = exc.error if isinstance(exc, MatrixError) else f"{type(exc).__name__}: {exc}"
        with transaction.atomic():
            jobs.finish(job, error=error)
            audit.record(
                job.actor,
                "room.delete.failed",
                job.target,
                via=_via_of(job),
                delete_id=job.job_id,
                error=error,
            )
        return job
    if done:
        with transaction.atomic():
            jobs.finish(job)
            audit.record(
                job.actor,
                "room.delete.complete",
                job.target,
                via=_via_of(job),
                delete_id=job.job_id,
            )
    return job


def _via_of(job: AdminJob) -> str:
    """Where the deletion was asked for ("api" or "portal"): its end is logged alike."""
    started = AuditEntry.objects.filter(
        action=DELETE_ROOM, target=job.target, details__delete_id=job.job_id
    ).values_list("via", flat=True)
    return started.first() or "api"


def resumable_deletions() -> list[AdminJob]:
    """Deletion jobs no worker is running: scheduled or active, without a step for
    ``STALE_AFTER_MS`` (a worker died, a task was lost, or the purge waits its turn)."""
    stale_before = now_ms() - STALE_AFTER_MS
    return [
        job
        for job in jobs.unfinished(DELETE_ROOM)
        if int(job.progress.get("heartbeat_ts") or job.created_at.timestamp() * 1000)
        <= stale_before
    ]


def _step(job: AdminJob, **progress: Any) -> None:
    jobs.report(job, heartbeat_ts=now_ms(), **progress)


def _shut_down(job: AdminJob) -> bool:
    """The deletion's steps, each a no-op when already done (Synapse's shutdown_room,
    then purge_room); False when the purge waits (see ``PURGE_GRACE_MS``)."""
    room_id, params = job.target, job.params
    for key in ("kicked_users", "failed_to_kick_users", "local_aliases"):
        job.progress.setdefault(key, [])
    job.progress.setdefault("new_room_id", None)
    _step(job)
    if params.get("block"):
        blocking.do_block_room(room_id, job.actor)
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        # Blocked before this server knew it, or purged by an earlier run.
        return True
    Room.objects.filter(pk=room.pk).update(is_public=False)
    new_room_id = _new_room(job)
    _move_local_members(job, room_id, new_room_id)
    _move_aliases(job, room, new_room_id)
    if not params.get("purge", True):
        return True
    still_joined = Membership.objects.filter(
        room=room, membership=JOIN, user_id__in=_local_members(room_id)
    ).exists()
    if still_joined and not params.get("force_purge"):
        raise MatrixError("M_UNKNOWN", "Users are still joined to this room")
    purge_at = job.progress.get("purge_at_ts")
    if purge_at is None:
        purge_at = now_ms() + PURGE_GRACE_MS
        _step(job, purge_at_ts=purge_at)
    if now_ms() < purge_at:
        return False
    purge.do_purge_room(room_id)
    _step(job, purged=True)
    return True


def _new_room(job: AdminJob) -> str | None:
    """The room the local members are moved to: made once, its ID stored with it."""
    creator = job.params.get("new_room_user_id")
    if not creator:
        return None
    if job.progress.get("new_room_id"):
        return str(job.progress["new_room_id"])
    with transaction.atomic():
        # Synapse's room for the moved members: anyone may join, nobody but its
        # creator may speak (users_default -10).
        spec = creation.RoomSpec(
            creator=creator,
            preset="public_chat",
            name=job.params.get("room_name") or DEFAULT_NEW_ROOM_NAME,
            power_level_content_override={"users_default": -10},
        )
        new_room = creation.do_create_room(spec)
        do_send_event(
            new_room.room_id,
            SendContext(sender=creator),
            "m.room.message",
            {"msgtype": "m.text", "body": job.params.get("message") or DEFAULT_MESSAGE},
        )
        _step(job, new_room_id=new_room.room_id)
    return new_room.room_id


def _local_members(room_id: str) -> list[str]:
    users = Membership.objects.filter(
        room__room_id=room_id, membership__in=(JOIN, INVITE, KNOCK)
    ).values_list("user_id", flat=True)
    return [user_id for user_id in users if is_local_user(user_id)]


def _move_local_members(job: AdminJob, room_id: str, new_room_id: str | None) -> None:
    """Each local member leaves the room (an invite is rejected, a knock withdrawn), and
    a joined one joins the new room: one transaction per member, with its progress.

    Unlike Synapse the room is not forgotten for them: a forgotten room is left out of
    /sync, and their clients are to hear that they left."""
    members = Membership.objects.filter(
        room__room_id=room_id, membership__in=(JOIN, INVITE, KNOCK)
    ).values_list("user_id", "membership")
    for user_id, membership in members:
        if not is_local_user(user_id):
            continue
        ctx = SendContext(sender=user_id)
        try:
            with transaction.atomic():
                do_update_membership(room_id, ctx, user_id, LEAVE)
                if new_room_id is not None and membership == JOIN:
                    do_update_membership(new_room_id, ctx, user_id, JOIN)
                _step(job, kicked_users=[*job.progress["kicked_users"], user_id])
        except MatrixError as exc:
            logger.warning("Could not remove %s from %s: %s", user_id, room_id, exc.error)
            failed = [*job.progress["failed_to_kick_users"], user_id]
            _step(job, failed_to_kick_users=failed)


def _move_aliases(job: AdminJob, room: Room, new_room_id: str | None) -> None:
    """The room's local aliases point at the new room, or are deleted."""
    with transaction.atomic():
        aliases = list(RoomAlias.objects.filter(room=room).values_list("alias", flat=True))
        if not aliases:
            return
        if new_room_id is not None:
            RoomAlias.objects.filter(room=room).update(room=Room.objects.get(room_id=new_room_id))
        else:
            RoomAlias.objects.filter(room=room).delete()
        _step(job, local_aliases=[*job.progress["local_aliases"], *aliases])


# --- other room actions -------------------------------------------------------------------


def make_room_admin(
    room_id: str, user_id: str, *, actor: str, via: str = "api", ip: str = ""
) -> None:
    """Give ``user_id`` (a local user) the power of the most powerful local member, who
    sends the change: joined first if the room is public, invited otherwise (Synapse's
    make_room_admin). 400 when no local member may change the power levels."""
    if not (is_valid_user_id(user_id) and is_local_user(user_id)):
        raise invalid_param("Only local users can be admins of rooms")
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise MatrixError("M_NOT_FOUND", "Room not found")
    room_version = room_version_of(room)
    state = load_state(room.current_state_group_id)
    members = [u for u in _local_members(room_id) if state.get(("m.room.member", u))]
    keys = {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", "")}
    keys |= {("m.room.member", u) for u in members}
    auth_state = auth_state_for(room_version, state, keys)
    joined = [u for u in members if auth_rules.get_membership(auth_state, u) == JOIN]
    if not joined:
        raise invalid_param("No local admin user in room")
    levels = {u: auth_rules.get_user_power_level(room_version, u, auth_state) for u in joined}
    admin = max(joined, key=lambda u: (levels[u], u))
    power_levels = auth_state.get(("m.room.power_levels", ""))
    content = dict(power_levels.content) if power_levels is not None else {}
    users = dict(content.get("users") or {})
    finite = [v for v in users.values() if isinstance(v, int)]
    level = levels[admin] if levels[admin] != auth_rules.CREATOR_POWER_LEVEL else None
    level = level if level is not None else max([100, *finite])
    join_rules = auth_state.get(("m.room.join_rules", ""))
    public = join_rules is not None and join_rules.content.get("join_rule") == "public"
    with transaction.atomic():
        if auth_rules.get_membership(auth_state, user_id) != JOIN:
            if public:
                do_update_membership(room_id, SendContext(sender=user_id), user_id, JOIN)
            elif auth_rules.get_membership(auth_state, user_id) != INVITE:
                do_update_membership(room_id, SendContext(sender=admin), user_id, INVITE)
        if user_id != admin:
            users[user_id] = int(level)
            do_send_event(
                room_id,
                SendContext(sender=admin),
                "m.room.power_levels",
                {**content, "users": users},
                state_key="",
            )
        audit.record(actor, "room.make_admin", room_id, via=via, ip=ip, user_id=user_id)


def set_published(
    room_id: str, published: bool, *, actor: str, via: str = "api", ip: str = ""
) -> None:
    """Publish the room in this server's directory (/publicRooms), or take it out."""
    with transaction.atomic():
        directory.do_set_visibility(
            room_id, actor, directory.PUBLIC if published else directory.PRIVATE, is_admin=True
        )
        action = "room.publish" if published else "room.unpublish"
        audit.record(actor, action, room_id, via=via, ip=ip)


def resolve_report(report_id: int, *, actor: str, via: str = "api", ip: str = "") -> bool:
    """Mark a report handled; False when it already was."""
    with transaction.atomic():
        changed = reports.do_resolve_reports([report_id]) > 0
        audit.record(actor, "report.resolve", str(report_id), via=via, ip=ip)
    return changed


def delete_report(report_id: int, *, actor: str, via: str = "api", ip: str = "") -> None:
    """Delete a report (DELETE /_synapse/admin/v1/event_reports/{reportId})."""
    with transaction.atomic():
        report = EventReport.objects.select_for_update().filter(pk=report_id).first()
        if report is None:
            raise MatrixError("M_NOT_FOUND", "Event report not found")
        details: dict[str, Any] = {
            "event_id": report.event_id,
            "room_id": report.room_id,
            "reporter": report.reporter,
        }
        report.delete()
        audit.record(actor, "report.delete", str(report_id), via=via, ip=ip, **details)
