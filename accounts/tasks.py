"""Periodic housekeeping for accounts."""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task

from accounts.services import mail, sessions, sms, threepids, uia


@shared_task
def purge_expired_auth_state() -> dict[str, int]:
    """Forget UIA sessions past their lifetime and sessions whose tokens expired."""
    return {
        "uia_sessions": uia.do_purge_expired_sessions(),
        "expired_sessions": sessions.do_purge_expired_sessions(),
        "threepid_sessions": threepids.do_purge_expired_sessions(),
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


@shared_task(
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=12,
)
def deliver_sms(url: str, body: dict[str, Any]) -> None:
    """POST one verification code to the operator's SMS webhook (TRELLIS_SMS_WEBHOOK_URL;
    the body is described in accounts/services/threepids.py); an unreachable webhook or
    an HTTP error status is retried with backoff (urllib's errors are OSErrors)."""
    sms.post(url, body, timeout_s=30)
