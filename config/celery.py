"""The Celery app. Workers run the same services as the web processes.

Periodic tasks are listed in ``beat_schedule``. In production ``celery beat`` sends
them (once, for all workers). In the embedded default the launcher sets
TRELLIS_EMBEDDED_SCHEDULER, and the worker sends them itself from a thread, which
saves running a separate beat process.
"""

import logging
import os
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutting_down

import config.broker  # noqa: F401  (registers the trellisfs:// broker transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("trellis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    # Invitations to bound addresses whose delivery (PUT /3pid/onbind) ran out of retries.
    "resume-identity-invite-deliveries": {
        "task": "identity.tasks.resume_invite_deliveries",
        "schedule": 3600.0,
    },
    "purge-expired-identity-sessions": {
        "task": "identity.tasks.purge_expired_sessions",
        "schedule": 3600.0,
    },
    "purge-expired-auth-state": {
        "task": "accounts.tasks.purge_expired_auth_state",
        "schedule": 3600.0,
    },
    "purge-expired-media-state": {
        "task": "media.tasks.purge_expired_media_state",
        "schedule": 3600.0,
    },
    # Message IDs of other servers' to-device EDUs past their retention.
    "purge-federated-to-device-ids": {
        "task": "e2ee.tasks.purge_federated_to_device_ids",
        "schedule": 3600.0,
    },
    # Local users' presence sent again to the servers sharing a room with them
    # (presence.federation_out.PING_INTERVAL_S).
    "send-presence-pings": {
        "task": "presence.tasks.send_presence_pings",
        "schedule": 1500.0,
    },
    # Pushers whose delivery was interrupted (worker died, retry lost) pick up again.
    "resume-pushers": {
        "task": "push.tasks.resume_pushers",
        "schedule": 60.0,
    },
    # Admin room deletions a worker dropped (operators.services.rooms) pick up again.
    "resume-room-deletions": {
        "task": "operators.tasks.resume_room_deletions",
        "schedule": 60.0,
    },
    # Inbound federation PDUs whose room no worker is taking (worker died) pick up again.
    "resume-inbound-pdus": {
        "task": "rooms.tasks.resume_inbound_pdus",
        "schedule": 60.0,
    },
    # Destinations whose retry is due, or whose run was lost, are sent their queue.
    "resume-federation-destinations": {
        "task": "federation.tasks.resume_destinations",
        "schedule": 30.0,
    },
    # Operator jobs redacting a user's events that a dead worker left unfinished.
    "resume-redact-user-events": {
        "task": "operators.tasks.resume_redact_user_events",
        "schedule": 300.0,
    },
    # Remote users' device lists that were missed updates and whose resync failed.
    "resync-stale-device-lists": {
        "task": "e2ee.tasks.resync_stale_device_lists",
        "schedule": 60.0,
    },
}

_scheduler_stop = threading.Event()
# How often the embedded scheduler looks at the clock.
_POLL_S = 5.0


def _run_embedded_schedule() -> None:
    """Send each periodic task once per its interval, first one interval after start."""
    next_due = {
        name: time.monotonic() + float(e["schedule"]) for name, e in app.conf.beat_schedule.items()
    }
    while not _scheduler_stop.wait(timeout=_POLL_S):
        now = time.monotonic()
        for name, entry in app.conf.beat_schedule.items():
            if now >= next_due[name]:
                next_due[name] = now + float(entry["schedule"])
                try:
                    app.send_task(entry["task"])
                except Exception:
                    logger.warning("Could not send periodic task %s", name, exc_info=True)


@worker_ready.connect
def _start_embedded_scheduler(**kwargs: Any) -> None:
    if os.environ.get("TRELLIS_EMBEDDED_SCHEDULER") == "1":
        threading.Thread(target=_run_embedded_schedule, name="embedded-beat", daemon=True).start()


@worker_shutting_down.connect
def _stop_embedded_scheduler(**kwargs: Any) -> None:
    _scheduler_stop.set()
