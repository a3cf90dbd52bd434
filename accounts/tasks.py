"""Periodic housekeeping for accounts."""

from __future__ import annotations

import smtplib

from celery import shared_task

from accounts.services import mail, sessions, uia


@shared_task
def purge_expired_auth_state() -> dict[str, int]:
    """Forget UIA sessions past their lifetime and sessions whose tokens expired."""
    return {
        "uia_sessions": uia.do_purge_expired_sessions(),
        "expired_sessions": sessions.do_purge_expired_sessions(),
    }


@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=12,
)
def deliver_mail(to: str, subject: str, text: str, html: str) -> None:
    """Send one mail; a refused or unreachable SMTP server is retried with backoff
    (for about an hour in all) before the mail is given up."""
    mail.deliver(to, subject, text, html)
