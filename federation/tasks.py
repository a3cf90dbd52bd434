"""Celery tasks of the federation app: sending the outbound queue, and the sweep that
resumes it (federation.outbound)."""

from __future__ import annotations

from celery import shared_task

from federation import outbound


@shared_task
def send_to(server_name: str) -> int:
    """Send a destination's queue; schedule its retry if a transaction failed, or a
    follow-up task if more waits than one run sends."""
    result = outbound.send_pending(server_name)
    if result.retry_in_ms is not None:
        # Early runs do nothing: the destination's retry_at_ts holds them back until then.
        send_to.apply_async((server_name,), countdown=result.retry_in_ms / 1000)
    elif result.more:
        send_to.delay(server_name)
    return result.sent


@shared_task
def resume_destinations() -> int:
    """Periodic: start a run for every destination with queued items that no run holds
    and whose backoff is over (a lost kick, a lost retry, a worker that died)."""
    names = outbound.destinations_to_resume()
    for name in names:
        send_to.delay(name)
    return len(names)
