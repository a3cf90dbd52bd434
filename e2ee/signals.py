"""Receivers of account and room events: a user's device list follows their devices,
and the cache of remote users' device lists follows who shares a room.

accounts and rooms never import e2ee; these are connected from E2eeConfig.ready() to
Django's model signals on Device, to accounts.signals and to rooms.hooks. Each runs
inside the transaction that made the change, so the change and its device-list position
(and the updates queued for other servers) commit together.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from accounts.models import Device, User
from e2ee import federation_out
from e2ee.models import CrossSigningKey, KeySignature
from e2ee.services import device_lists, remote_device_lists
from protocol.errors import MatrixError
from rooms.hooks import Finish, PersistingEvent


def _user_id(device: Device) -> str | None:
    localpart = User.objects.filter(pk=device.user_id).values_list("localpart", flat=True).first()
    return f"@{localpart}:{settings.SERVER_NAME}" if localpart is not None else None


def refuse_cross_signing_key_as_device_id(
    sender: Any, instance: Device, raw: bool = False, **kwargs: Any
) -> None:
    """ "Servers must ensure that device IDs will not collide with cross-signing public
    keys" (Cross-signing): a new device may not take the ID of one of the user's keys."""
    if raw or instance.pk is not None:
        return
    if CrossSigningKey.objects.filter(
        owner_id=instance.user_id, public_key=instance.device_id
    ).exists():
        raise MatrixError("M_INVALID_PARAM", "This device ID is in use as a cross-signing key")


def device_saved(
    sender: Any, instance: Device, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """A new device is a device list change (its keys come later, another change), here
    and for the other servers sharing a room with the user."""
    if created and not raw:
        user_id = _user_id(instance)
        if user_id is not None:
            device_lists.do_mark_changed([user_id])
            federation_out.queue_device_list_update(user_id, [instance.device_id])


def device_deleted(sender: Any, instance: Device, **kwargs: Any) -> None:
    """A removed device is a device list change; its keys go with it (the foreign keys
    cascade) and so do the signatures others made of them."""
    user_id = _user_id(instance)
    if user_id is None:
        return
    KeySignature.objects.filter(target_user_id=user_id, target_key_id=instance.device_id).delete()
    device_lists.do_mark_changed([user_id])
    federation_out.queue_device_list_update(user_id, [instance.device_id])


def device_renamed(sender: Any, user_id: str, device_id: str, **kwargs: Any) -> None:
    """The display name is in /keys/query's ``unsigned``: clients re-read it."""
    device_lists.do_mark_changed([user_id])
    federation_out.queue_device_list_update(user_id, [device_id])


def user_deactivated(sender: Any, user_id: str, **kwargs: Any) -> None:
    """A deactivated user keeps no cross-signing identity (their devices are deleted,
    with their keys, by the deactivation itself)."""
    removed, _ = CrossSigningKey.objects.filter(user_id=user_id).delete()
    KeySignature.objects.filter(target_user_id=user_id).delete()
    KeySignature.objects.filter(signer_user_id=user_id).delete()
    if removed:
        device_lists.do_mark_changed([user_id])


def membership_persisting(persisting: PersistingEvent) -> Finish | None:
    """A rooms hook: a leave or ban may end a remote user's sharing a room with local
    users, after which their server sends no more device list updates here."""
    event = persisting.event
    if event.type != "m.room.member" or not event.state_key:
        return None
    if event.content.get("membership") in ("leave", "ban"):
        remote_device_lists.do_note_departure(persisting.room, event.state_key)
    return None
