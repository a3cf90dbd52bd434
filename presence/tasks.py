"""Periodic tasks of presence."""

from __future__ import annotations

from celery import shared_task

from presence import federation_out


@shared_task
def send_presence_pings() -> int:
    """Send local users' presence to the servers sharing a room with them again, so
    those that forget quiet remote users (Synapse, after 30 minutes) do not."""
    return federation_out.do_send_presence_pings()
