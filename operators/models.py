"""What operators did, and the long admin jobs they started.

Every operator action, from the portal or the admin API, leaves an :class:`AuditEntry`
(who, what, when, on what); entries are only ever added. Actions that take long (a room
deletion, redacting all of a user's events) are :class:`AdminJob` rows run by Celery:
the row is written before the job is queued, so an interrupted job is found again and
resumed or reported as failed, never left half-done without a trace.
"""

from __future__ import annotations

import uuid

from django.db import models


class AuditEntry(models.Model):
    # The operator: a Matrix user ID, or the portal login of a Django superuser that has
    # none ("shared-secret" for the registration API).
    actor = models.CharField(max_length=255)
    # A dotted name, e.g. "user.deactivate", "room.delete", "media.quarantine".
    action = models.CharField(max_length=64)
    # What was acted on: a user, room or event ID, an mxc URI, a server name.
    target = models.CharField(max_length=512, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    # "api" (the /_synapse/admin API) or "portal".
    via = models.CharField(max_length=16, default="api")
    ip = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["target", "-created_at"]),
            models.Index(fields=["actor", "-created_at"]),
        ]
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class AdminJob(models.Model):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETE = "complete"
    FAILED = "failed"
    STATUSES = [(s, s) for s in (SCHEDULED, ACTIVE, COMPLETE, FAILED)]

    # Synapse's delete_id / redact_id: an opaque string the API hands back.
    job_id = models.CharField(max_length=64, unique=True, default=uuid.uuid4)
    # e.g. "room.delete", "user.redact_events"
    kind = models.CharField(max_length=64)
    target = models.CharField(max_length=512)
    actor = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=STATUSES, default=SCHEDULED)
    # What the job was asked to do (its request body), so a restarted worker can resume.
    params = models.JSONField(default=dict, blank=True)
    # Progress and result as the job reports them (counts done, lists of IDs, ...).
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "target"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.status})"


class ReportAssignment(models.Model):
    """Who among the operators handles a report, and who resolved it (the report queue
    of the portal); a report nobody has taken has no row."""

    report = models.OneToOneField(
        "rooms.EventReport", on_delete=models.CASCADE, related_name="assignment"
    )
    # Operators' Matrix user IDs.
    assigned_to = models.CharField(max_length=255, blank=True, default="")
    assigned_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=255, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"report {self.report_id}: {self.assigned_to or 'unassigned'}"
