"""Celery tasks of the identity service: text messages, and delivering stored invitations
to the homeserver of whoever bound the invited address."""

from __future__ import annotations

from celery import shared_task

from identity.services import invites, sms, validation


@shared_task(
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=12,
)
def send_sms(msisdn: str, text: str) -> None:
    """Hand one text message to the SMS webhook; retried with backoff while it fails."""
    sms.deliver(msisdn, text)


@shared_task(
    autoretry_for=(invites.OnbindFailed,),
    retry_backoff=10,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=30,
)
def deliver_invites(medium: str, address: str, mxid: str) -> int:
    """PUT /3pid/onbind to ``mxid``'s homeserver with the invitations of the address it
    bound; retried with backoff (about a day), then the hourly sweep takes over."""
    return invites.deliver_bound_invites(medium, address, mxid)


@shared_task
def resume_invite_deliveries() -> int:
    """Periodic: queue again every bound invitation not yet delivered (a worker that died,
    a homeserver down for longer than the retries)."""
    pending = invites.undelivered_bindings()
    for medium, address, mxid in pending:
        deliver_invites.delay(medium, address, mxid)
    return len(pending)


@shared_task
def purge_expired_sessions() -> int:
    """Periodic: validation sessions past their 24 hours are of no use any more."""
    return validation.do_purge_expired_sessions()
