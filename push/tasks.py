"""Celery tasks of the push app: delivery to push gateways, and the sweep that resumes it."""

from __future__ import annotations

from celery import shared_task

from push import delivery


@shared_task
def deliver(pusher_id: int) -> int:
    """Send a pusher's pending notifications; schedule its retry if the gateway failed,
    or a follow-up task if more rows wait than one run handles."""
    result = delivery.deliver_pending(pusher_id)
    if result.retry_in_ms is not None:
        # Early runs do nothing: the pusher's retry_at_ts holds them back until then.
        deliver.apply_async((pusher_id,), countdown=result.retry_in_ms / 1000)
    elif result.more:
        deliver.delay(pusher_id)
    return result.sent


@shared_task
def send_badge(pusher_id: int) -> bool:
    """Send the user's new unread count to a pusher's gateway (after a read receipt)."""
    return delivery.send_badge(pusher_id)


@shared_task
def resume_pushers() -> int:
    """Periodic: start delivery for every pusher with rows after its position that no run
    holds and whose backoff is over (a lost kick, a lost retry, a worker that died)."""
    pusher_ids = delivery.pushers_to_resume()
    for pk in pusher_ids:
        deliver.delay(pk)
    return len(pusher_ids)
