"""Periodic housekeeping for end-to-end encryption."""

from __future__ import annotations

from celery import shared_task

from e2ee.services import to_device


@shared_task
def purge_federated_to_device_ids() -> int:
    """Forget the message IDs of other servers' to-device EDUs past their retention."""
    return to_device.do_purge_federated_message_ids()
