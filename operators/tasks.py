"""Celery tasks of the operators app: the admin jobs, and the sweep that resumes them."""

from __future__ import annotations

from celery import shared_task

from operators.services import rooms as room_actions


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
