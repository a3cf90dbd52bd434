"""Receivers of account events: pushers go with the device that set them and with the
account. accounts never imports push; these are connected from PushConfig.ready(), and
run inside the transaction that made the change."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import Device, User
from push.delivery import pushers_changed
from push.services import pushers


def device_deleted(sender: Any, instance: Device, **kwargs: Any) -> None:
    """Logout, logout/all, DELETE /devices and deactivation all delete devices."""
    localpart = (
        User.objects.filter(pk=instance.user_id).values_list("localpart", flat=True).first()
    )
    if localpart is not None:
        pushers.do_remove_device_pushers(
            f"@{localpart}:{settings.SERVER_NAME}", instance.device_id
        )


def user_deactivated(sender: Any, user_id: str, **kwargs: Any) -> None:
    """Also the pushers no device owns any more (Synapse removes them all too)."""
    pushers.do_remove_user_pushers(user_id)


def pusher_written(sender: Any, **kwargs: Any) -> None:
    pushers_changed()


def user_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    """An account deleted outright (the admin portal) leaves no pusher behind."""
    pushers.do_remove_user_pushers(instance.user_id)
