"""Local users' device lists for other servers (Server-Server API, "Device Management"):
m.device_list_update and m.signing_key_update EDUs.

When a local user's device is added, removed, renamed, re-keyed or cross-signed, an
m.device_list_update describing that device goes to every other server with a user
joined to a room the user is joined to; a new master or self-signing key (or a new
signature of the master key by one of the user's devices) goes as an
m.signing_key_update. They are queued (federation.outbound) in the transaction of the
change, so they are as durable as it: a server that is down gets them, in order, when it
is back (catch-up keeps every EDU but typing). Device list updates are not keyed: each
is a link of the user's chain, which the receiving server follows.

The chain: each update of a user has the next ``stream_id`` of the user's sequence
(``LocalDeviceListStream``, locked while it moves) and the one before as ``prev_id``; GET
/user/devices gives the head with its snapshot, so a server that resynced follows the
next update, and one that missed an update sees a ``prev_id`` it does not know and
resyncs. Cross-signing updates have no chain (the spec gives them none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

from e2ee import selectors
from e2ee.models import CrossSigningKey, LocalDeviceListStream
from federation.outbound import enqueue_edus
from protocol.identifiers import parse_user_id

DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"


def _is_local(user_id: str) -> bool:
    try:
        return parse_user_id(user_id).domain == settings.SERVER_NAME
    except ValueError:
        return False


def queue_device_list_update(user_id: str, device_ids: Iterable[str]) -> list[str]:
    """Queue an m.device_list_update for each of ``device_ids`` of local ``user_id``, as
    the devices are now (gone: ``deleted``), in the current transaction; the servers
    they were queued for. The user's sequence moves on even when no server shares a
    room with them, so the head always names the latest change."""
    devices = sorted(set(device_ids))
    if not devices or not _is_local(user_id):
        return []
    with transaction.atomic():
        head = _locked_head(user_id)
        servers = selectors.servers_sharing_a_room_with(user_id)
        current = selectors.local_devices(user_id, devices) if servers else {}
        for device_id in devices:
            prev_id = head.stream_id
            head.stream_id += 1
            if servers:
                content = _device_update(user_id, device_id, head.stream_id, prev_id, current)
                enqueue_edus(DEVICE_LIST_UPDATE, content, servers)
        head.save(update_fields=["stream_id"])
    return sorted(servers)


def _locked_head(user_id: str) -> LocalDeviceListStream:
    head = LocalDeviceListStream.objects.select_for_update().filter(user_id=user_id).first()
    if head is None:
        LocalDeviceListStream.objects.bulk_create(
            [LocalDeviceListStream(user_id=user_id)], ignore_conflicts=True
        )
        head = LocalDeviceListStream.objects.select_for_update().get(user_id=user_id)
    return head


def _device_update(
    user_id: str,
    device_id: str,
    stream_id: int,
    prev_id: int,
    current: dict[str, selectors.LocalDevice],
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "user_id": user_id,
        "device_id": device_id,
        "stream_id": stream_id,
        "prev_id": [prev_id] if prev_id else [],
    }
    device = current.get(device_id)
    if device is None:
        content["deleted"] = True
        return content
    if device.display_name is not None:
        content["device_display_name"] = device.display_name
    if device.keys is not None:
        content["keys"] = device.keys
    return content


def queue_signing_key_update(user_id: str) -> list[str]:
    """Queue an m.signing_key_update with local ``user_id``'s master and self-signing
    keys as they are now, in the current transaction; the servers it was queued for.
    Keyed by user: a server that is behind gets the latest keys once."""
    if not _is_local(user_id):
        return []
    servers = selectors.servers_sharing_a_room_with(user_id)
    if not servers:
        return []
    keys = selectors.published_cross_signing_keys(user_id)
    content: dict[str, Any] = {"user_id": user_id}
    if CrossSigningKey.MASTER in keys:
        content["master_key"] = keys[CrossSigningKey.MASTER]
    if CrossSigningKey.SELF_SIGNING in keys:
        content["self_signing_key"] = keys[CrossSigningKey.SELF_SIGNING]
    return enqueue_edus(SIGNING_KEY_UPDATE, content, servers, key=user_id)
