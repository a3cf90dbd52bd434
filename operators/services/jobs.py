"""Long operator actions as durable jobs: the row first, then the Celery task."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from operators.models import AdminJob


def create(kind: str, target: str, actor: str, params: dict[str, Any]) -> AdminJob:
    """Store a scheduled job. Queue its task with ``transaction.on_commit`` so a worker
    never looks for a row that is not committed yet."""
    return AdminJob.objects.create(
        job_id=str(uuid.uuid4()), kind=kind, target=target, actor=actor, params=params
    )


def start(job: AdminJob) -> None:
    AdminJob.objects.filter(pk=job.pk).update(status=AdminJob.ACTIVE)
    job.status = AdminJob.ACTIVE


def report(job: AdminJob, **progress: Any) -> None:
    """Merge ``progress`` into the job's progress (its own short transaction, so the
    portal sees it while the job runs)."""
    job.progress = {**job.progress, **progress}
    with transaction.atomic():
        AdminJob.objects.filter(pk=job.pk).update(progress=job.progress)


def finish(job: AdminJob, *, error: str = "") -> None:
    job.status = AdminJob.FAILED if error else AdminJob.COMPLETE
    job.error = error
    AdminJob.objects.filter(pk=job.pk).update(status=job.status, error=error)


def unfinished(kind: str | None = None) -> list[AdminJob]:
    """Jobs a worker should (re)start: scheduled, or active when a worker died."""
    jobs = AdminJob.objects.filter(status__in=[AdminJob.SCHEDULED, AdminJob.ACTIVE])
    if kind:
        jobs = jobs.filter(kind=kind)
    return list(jobs.order_by("created_at", "id"))
