"""The cache of other servers' users' device lists (Server-Server API, "Device
Management"): what it holds, how updates from their servers are applied, and how it is
fetched again when an update was missed.

Only users who share a room with a local user are cached: their servers send this server
an m.device_list_update EDU for every change of a device (each with a ``stream_id``, and
``prev_id``: the updates it follows) and an m.signing_key_update for new cross-signing
keys. An update is applied when its ``prev_id`` are updates already applied; otherwise one
was missed, the list is marked stale (nothing of the update is stored) and fetched again
from the user's server (GET /user/devices, which gives the ``stream_id`` it is at). A
stale list is never used to answer /keys/query; neither is one of a user who no longer
shares a room with a local user (their server stopped sending updates, so the list is
marked stale when that happens: :func:`do_mark_room_members_stale`).

What a server says is kept only as far as the keys' own signatures vouch for it
(protocol.e2e_keys): device keys signed by the device's own ed25519 key, a self-signing
key signed by the master key. Updates are accepted only from the user's own server.

Every change of a cached list is a device list change (e2ee.services.device_lists), so
local users sharing a room see the user in /sync's ``device_lists.changed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from e2ee import selectors
from e2ee.models import RemoteDevice, RemoteDeviceList
from e2ee.services import device_lists
from federation import client
from protocol import e2e_keys
from protocol.identifiers import parse_user_id
from rooms.models import Membership, Room

logger = logging.getLogger(__name__)

USER_DEVICES = "/_matrix/federation/v1/user/devices/"
# Stream IDs remembered per user, for updates whose prev_id names several (a clustered
# server sends such).
RECENT_STREAM_IDS = 10
# A server claiming more devices for one user than this is not believed (Synapse's limit).
MAX_DEVICES = 1000
# Failed resyncs back off: a minute, doubling, up to a day.
RESYNC_BACKOFF_MS = 60 * 1000
MAX_RESYNC_BACKOFF_MS = 24 * 3600 * 1000
_MAX_ID = 255


def server_of(user_id: Any) -> str | None:
    if not isinstance(user_id, str):
        return None
    try:
        return parse_user_id(user_id).domain
    except ValueError:
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _touch(row: RemoteDeviceList) -> None:
    # Strictly increasing, so a reader can tell the row was written since it looked.
    row.updated_ts = max(now_ms(), row.updated_ts + 1)


# --- A device list as a server describes it ---------------------------------------------


@dataclass
class DeviceEntry:
    device_id: str
    display_name: str | None
    # Checked keys, or None (none published, or they did not check).
    keys: dict[str, Any] | None


@dataclass
class Snapshot:
    """A user's whole device list from their server, checked."""

    user_id: str
    devices: list[DeviceEntry]
    master_key: dict[str, Any] | None
    self_signing_key: dict[str, Any] | None
    # GET /user/devices gives one; /user/keys/query does not.
    stream_id: int | None = None


def device_entry(user_id: str, device_id: Any, keys: Any, display_name: Any) -> DeviceEntry | None:
    """A device of a server's answer or update; None when it is not one. Keys that do not
    check are dropped (logged), and so is the device: a device is only believed with the
    keys it signed itself, or without any."""
    if not isinstance(device_id, str) or not device_id or len(device_id) > _MAX_ID:
        return None
    name = display_name if isinstance(display_name, str) else None
    if keys is None:
        return DeviceEntry(device_id, name, None)
    checked = e2e_keys.remote_device_keys(keys, user_id, device_id)
    if checked is None:
        logger.info("dropped device %s of %s: its keys do not check", device_id, user_id)
        return None
    return DeviceEntry(device_id, name, checked)


def snapshot_from_user_devices(user_id: str, answer: Any) -> Snapshot | None:
    """The answer of GET /user/devices/{userId}, checked; None when it is not one."""
    if not isinstance(answer, dict) or answer.get("user_id", user_id) != user_id:
        return None
    stream_id, devices = answer.get("stream_id"), answer.get("devices")
    if not _is_int(stream_id) or not isinstance(devices, list) or len(devices) > MAX_DEVICES:
        return None
    entries: dict[str, DeviceEntry] = {}
    for device in devices:
        if not isinstance(device, dict):
            continue
        entry = device_entry(
            user_id, device.get("device_id"), device.get("keys"), device.get("device_display_name")
        )
        if entry is not None:
            entries[entry.device_id] = entry
    master, self_signing = e2e_keys.remote_cross_signing_keys(
        user_id, answer.get("master_key"), answer.get("self_signing_key")
    )
    return Snapshot(user_id, list(entries.values()), master, self_signing, stream_id)


# --- Fetching again -------------------------------------------------------------------------


def resync(user_id: str) -> bool:
    """Fetch a remote user's device list from their server (GET /user/devices) and store
    it, if the user still shares a room with a local user. True when stored; on failure
    the list stays stale and is retried after a backoff (e2ee.tasks)."""
    server = server_of(user_id)
    if server is None or not selectors.sharing_a_room_with_local_users([user_id]):
        return False
    try:
        answer = client.request_json(server, "GET", USER_DEVICES + quote(user_id, safe=""))
    except client.FederationError as exc:
        logger.info("could not resync the devices of %s: %s", user_id, exc)
        do_back_off(user_id)
        return False
    snapshot = snapshot_from_user_devices(user_id, answer)
    if snapshot is None:
        logger.info("%s answered /user/devices for %s with something else", server, user_id)
        do_back_off(user_id)
        return False
    return do_store_snapshot(snapshot)


def do_back_off(user_id: str) -> None:
    """A resync failed: the list stays stale, and is tried again later."""
    with transaction.atomic():
        row = RemoteDeviceList.objects.select_for_update().filter(user_id=user_id).first()
        if row is None:
            row = RemoteDeviceList(user_id=user_id, server_name=server_of(user_id) or "")
        last_delay = (row.retry_at_ts - row.updated_ts) if row.retry_at_ts else 0
        delay = min(max(last_delay * 2, RESYNC_BACKOFF_MS), MAX_RESYNC_BACKOFF_MS)
        row.stale = True
        _touch(row)
        row.retry_at_ts = row.updated_ts + delay
        row.save()


def do_store_snapshot(snapshot: Snapshot, *, unless_written_since: int | None = None) -> bool:
    """Replace the cached list of ``snapshot.user_id`` with ``snapshot``: no longer stale.

    A snapshot older than what is held (a lower ``stream_id``: a resync that was
    overtaken) is not stored, nor, with ``unless_written_since``, one the row was
    written after (a /user/keys/query answer that an update overtook). True when stored.
    """
    user_id = snapshot.user_id
    with transaction.atomic():
        row = RemoteDeviceList.objects.select_for_update().filter(user_id=user_id).first()
        if row is not None:
            if unless_written_since is not None and row.updated_ts != unless_written_since:
                return False
            if (
                snapshot.stream_id is not None
                and row.stream_id is not None
                and snapshot.stream_id < row.stream_id
            ):
                return False
        else:
            if unless_written_since is not None and unless_written_since != 0:
                return False
            row = RemoteDeviceList(user_id=user_id, server_name=server_of(user_id) or "")
        changed = _replace(row, snapshot)
        row.stream_id = snapshot.stream_id
        row.recent_stream_ids = [snapshot.stream_id] if snapshot.stream_id is not None else []
        row.stale = False
        row.retry_at_ts = None
        _touch(row)
        row.save()
        if changed:
            device_lists.do_mark_changed([user_id])
    return True


def _replace(row: RemoteDeviceList, snapshot: Snapshot) -> bool:
    """Make the row's devices and keys the snapshot's; whether anything changed."""
    held = {d.device_id: d for d in RemoteDevice.objects.filter(device_list=row)} if row.pk else {}
    wanted = {d.device_id: d for d in snapshot.devices}
    changed = row.master_key != snapshot.master_key or (
        row.self_signing_key != snapshot.self_signing_key
    )
    row.master_key = snapshot.master_key
    row.self_signing_key = snapshot.self_signing_key
    if not row.pk:
        row.save()
    gone = [device_id for device_id in held if device_id not in wanted]
    if gone:
        RemoteDevice.objects.filter(device_list=row, device_id__in=gone).delete()
        changed = True
    for device_id, entry in wanted.items():
        current = held.get(device_id)
        if current is None:
            RemoteDevice.objects.create(
                device_list=row,
                user_id=row.user_id,
                device_id=device_id,
                display_name=entry.display_name,
                key_json=entry.keys,
            )
            changed = True
        elif current.display_name != entry.display_name or current.key_json != entry.keys:
            current.display_name = entry.display_name
            current.key_json = entry.keys
            current.save(update_fields=["display_name", "key_json"])
            changed = True
    return changed


# --- Updates from the user's server ---------------------------------------------------------


@dataclass(frozen=True)
class DeviceListUpdate:
    user_id: str
    device_id: str
    stream_id: int
    prev_ids: tuple[int, ...]
    deleted: bool
    display_name: str | None
    keys: Any


def parse_device_list_update(origin: str, content: Mapping[str, Any]) -> DeviceListUpdate | None:
    """An m.device_list_update EDU's content, if well formed and about a user of
    ``origin``; None otherwise."""
    user_id, device_id = content.get("user_id"), content.get("device_id")
    stream_id, prev_ids = content.get("stream_id"), content.get("prev_id", [])
    if server_of(user_id) != origin:
        return None
    if not isinstance(device_id, str) or not device_id or len(device_id) > _MAX_ID:
        return None
    if not _is_int(stream_id) or prev_ids is None:
        return None
    if not isinstance(prev_ids, list) or not all(_is_int(p) for p in prev_ids):
        return None
    deleted = content.get("deleted", False)
    if not isinstance(deleted, bool):
        return None
    display_name = content.get("device_display_name")
    assert isinstance(user_id, str)
    return DeviceListUpdate(
        user_id,
        device_id,
        stream_id,
        tuple(prev_ids),
        deleted,
        display_name if isinstance(display_name, str) else None,
        content.get("keys"),
    )


def do_receive_device_list_update(update: DeviceListUpdate) -> bool:
    """Apply an m.device_list_update from the user's server (checked by
    :func:`parse_device_list_update`), in the caller's transaction. True when the list
    must be fetched again (the caller starts that after commit).

    A user with no cached list, or one who shares no room with a local user, has nothing
    to update: local clients are told the list changed (they will query it). A stale
    list stays so. An update already applied (its stream_id is not new) changes
    nothing. One whose prev_id are not all applied updates means one was missed: the
    list becomes stale and nothing of the update is stored.
    """
    user_id = update.user_id
    if not selectors.sharing_a_room_with_local_users([user_id]):
        return False
    row = RemoteDeviceList.objects.select_for_update().filter(user_id=user_id).first()
    if row is None:
        device_lists.do_mark_changed([user_id])
        return False
    if row.stale:
        device_lists.do_mark_changed([user_id])
        return True
    known = set(row.recent_stream_ids)
    if row.stream_id is not None:
        known.add(row.stream_id)
        if update.stream_id in known or update.stream_id < row.stream_id:
            return False
    if not update.prev_ids or not set(update.prev_ids) <= known:
        logger.info(
            "device list update %d of %s follows %s, not what is held (%s): resyncing",
            update.stream_id,
            user_id,
            list(update.prev_ids),
            row.stream_id,
        )
        row.stale = True
        _touch(row)
        row.save(update_fields=["stale", "updated_ts"])
        device_lists.do_mark_changed([user_id])
        return True
    _apply(row, update)
    row.stream_id = update.stream_id
    row.recent_stream_ids = [*row.recent_stream_ids, update.stream_id][-RECENT_STREAM_IDS:]
    _touch(row)
    row.save(update_fields=["stream_id", "recent_stream_ids", "updated_ts"])
    device_lists.do_mark_changed([user_id])
    return False


def _apply(row: RemoteDeviceList, update: DeviceListUpdate) -> None:
    held = RemoteDevice.objects.filter(device_list=row, device_id=update.device_id)
    entry = (
        None
        if update.deleted
        else device_entry(row.user_id, update.device_id, update.keys, update.display_name)
    )
    if entry is None:
        held.delete()
        return
    if not held.exists() and (RemoteDevice.objects.filter(device_list=row).count() >= MAX_DEVICES):
        logger.warning("ignored a new device of %s: it has %d already", row.user_id, MAX_DEVICES)
        return
    RemoteDevice.objects.update_or_create(
        user_id=row.user_id,
        device_id=update.device_id,
        defaults={
            "device_list": row,
            "display_name": entry.display_name,
            "key_json": entry.keys,
        },
    )


def do_receive_signing_key_update(origin: str, content: Mapping[str, Any]) -> bool:
    """Apply an m.signing_key_update from the user's server, in the caller's transaction;
    True when the list must be fetched again. The keys are kept only if they check (a
    master key; a self-signing key signed by the new or held master key). An update of a
    user not cached, or stale, only tells local clients."""
    user_id = content.get("user_id")
    if server_of(user_id) != origin:
        return False
    assert isinstance(user_id, str)
    if not selectors.sharing_a_room_with_local_users([user_id]):
        return False
    row = RemoteDeviceList.objects.select_for_update().filter(user_id=user_id).first()
    if row is None or row.stale:
        device_lists.do_mark_changed([user_id])
        return row is not None
    given_master, given_self_signing = content.get("master_key"), content.get("self_signing_key")
    master, self_signing = e2e_keys.remote_cross_signing_keys(
        user_id, given_master, given_self_signing, row.master_key
    )
    if (given_master is not None and master is None) or (
        given_self_signing is not None and self_signing is None
    ):
        logger.info("ignored a signing key update of %s: its keys do not check", user_id)
        return False
    if master is not None and master != row.master_key:
        row.master_key = master
        # The old self-signing key was signed by the old master key.
        row.self_signing_key = None
    if self_signing is not None:
        row.self_signing_key = self_signing
    _touch(row)
    row.save(update_fields=["master_key", "self_signing_key", "updated_ts"])
    device_lists.do_mark_changed([user_id])
    return False


# --- Sharing rooms --------------------------------------------------------------------------


def do_mark_stale(user_ids: Iterable[str]) -> int:
    """Mark the cached lists of ``user_ids`` stale: their servers may have stopped
    sending updates (they no longer share a room with a local user)."""
    users = sorted(set(user_ids))
    if not users:
        return 0
    return RemoteDeviceList.objects.filter(user_id__in=users, stale=False).update(
        stale=True, updated_ts=now_ms()
    )


def do_note_departure(room: Room, user_id: str) -> int:
    """``user_id`` left ``room`` (or was banned from it): the cached lists that may no
    longer be kept current are marked stale. A remote user's own; when the last local
    member leaves, those of the remote members (this server no longer shares the room
    with them). Some may still share another room: that costs a fetch, never a stale
    answer."""
    local_suffix = ":" + settings.SERVER_NAME
    if not user_id.endswith(local_suffix):
        return do_mark_stale([user_id])
    joined = Membership.objects.filter(room=room, membership="join").exclude(user_id=user_id)
    if joined.filter(user_id__endswith=local_suffix).exists():
        return 0
    return do_mark_stale(joined.values_list("user_id", flat=True))


def do_sweep_stale(limit: int = 100) -> list[str]:
    """Stale lists whose backoff is over, of users sharing a room with a local user: the
    ones to fetch again. Stale lists of users who share none any more are dropped (no
    update comes for them; a later /keys/query fills the cache again)."""
    now = now_ms()
    stale = list(
        RemoteDeviceList.objects.filter(stale=True)
        .exclude(retry_at_ts__gt=now)
        .order_by("pk")
        .values_list("user_id", flat=True)[:limit]
    )
    shared = selectors.sharing_a_room_with_local_users(stale)
    unshared = [user_id for user_id in stale if user_id not in shared]
    if unshared:
        RemoteDeviceList.objects.filter(user_id__in=unshared, stale=True).delete()
    return [user_id for user_id in stale if user_id in shared]
