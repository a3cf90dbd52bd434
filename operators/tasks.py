"""Celery tasks of the operator actions: load the job, run its service, resume jobs a
dead worker left unfinished."""

from __future__ import annotations

from celery import shared_task

from operators.models import AdminJob
from operators.services import users


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
