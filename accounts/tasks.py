"""Periodic housekeeping for accounts."""

from __future__ import annotations

from celery import shared_task

from accounts.services import sessions, uia


@shared_task
def purge_expired_auth_state() -> dict[str, int]:
    """Forget UIA sessions past their lifetime and sessions whose tokens expired."""
    return {
        "uia_sessions": uia.do_purge_expired_sessions(),
        "expired_sessions": sessions.do_purge_expired_sessions(),
    }
