"""Celery tasks of end-to-end encryption: housekeeping of to-device message IDs, and
fetching a remote user's device list again (e2ee.services.remote_device_lists)."""

from __future__ import annotations

from celery import shared_task

from e2ee.services import remote_device_lists, to_device


@shared_task
def purge_federated_to_device_ids() -> int:
    """Forget the message IDs of other servers' to-device EDUs past their retention."""
    return to_device.do_purge_federated_message_ids()


@shared_task
def resync_device_list(user_id: str) -> bool:
    """Fetch a remote user's device list from their server (an update was missed)."""
    return remote_device_lists.resync(user_id)


@shared_task
def resync_stale_device_lists() -> int:
    """Periodic: fetch again the stale lists whose backoff is over (a resync that failed
    or was lost), and drop those of users who share no room with a local user any more."""
    users = remote_device_lists.do_sweep_stale()
    for user_id in users:
        resync_device_list.delay(user_id)
    return len(users)
