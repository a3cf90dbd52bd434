"""Celery tasks of the operators app: the admin jobs (room deletion, redacting a user's
events), and the sweeps that resume the ones a dead worker left unfinished."""

from __future__ import annotations

from celery import shared_task

from operators.models import AdminJob
from operators.services import rooms as room_actions
from operators.services import users


@shared_task
def delete_room(job_id: str) -> str | None:
    """Run a room deletion job (operators.services.rooms.run_room_deletion)."""
    job = room_actions.run_room_deletion(job_id)
    return job.status if job is not None else None


@shared_task
def resume_room_deletions() -> int:
    """Periodic: run again every room deletion job no worker is running (its task lost,
    the worker died, or its purge waited its turn); each of its steps is safe to repeat."""
    pending = room_actions.resumable_deletions()
    for job in pending:
        delete_room.delay(job.job_id)
    return len(pending)


@shared_task
def redact_user_events(job_id: str) -> None:
    job = AdminJob.objects.filter(job_id=job_id, kind=users.REDACT_KIND).first()
    if job is None or job.status in (AdminJob.COMPLETE, AdminJob.FAILED):
        return
    users.run_redact_job(job)


@shared_task
def resume_redact_user_events() -> int:
    """Periodic: restart the user-redaction jobs no worker finished (one died)."""
    job_ids = users.resume_redact_jobs()
    for job_id in job_ids:
        redact_user_events.delay(job_id)
    return len(job_ids)
