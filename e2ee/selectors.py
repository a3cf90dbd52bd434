"""Reads of end-to-end encryption support: pending send-to-device messages, published
keys, and device list changes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet

from accounts.models import Device
from e2ee.models import (
    CrossSigningKey,
    DeviceKeys,
    DeviceListChange,
    FallbackKey,
    KeySignature,
    LocalDeviceListStream,
    OneTimeKey,
    RemoteDevice,
    RemoteDeviceList,
    ToDeviceMessage,
)
from protocol.identifiers import parse_user_id
from rooms import recent
from rooms.models import Event, Membership
from rooms.partial import servers_of_partial_rooms


def pending_messages(
    user_id: str, device_id: str, *, after: int, upto: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """The device's messages in (after, upto], in order of arrival, at most ``limit``:
    (stream position, event in /sync's to_device format)."""
    rows = (
        ToDeviceMessage.objects.filter(
            user_id=user_id, device_id=device_id, stream_id__gt=after, stream_id__lte=upto
        )
        .order_by("stream_id")
        .values_list("stream_id", "sender", "type", "content")[:limit]
    )
    return [
        (stream_id, {"sender": sender, "type": event_type, "content": content})
        for stream_id, sender, event_type, content in rows
    ]


# --- Device lists (Client-Server API, "Tracking the device list for a user") --------------

MEMBER = "m.room.member"
JOIN = "join"


def _joined_rooms(user_ids: Sequence[str]) -> QuerySet[Membership]:
    return Membership.objects.filter(user_id__in=user_ids, membership=JOIN).values("room_id")


def _sharing(user_id: str) -> QuerySet[Membership]:
    """Users joined to a room ``user_id`` is joined to (a subquery)."""
    return Membership.objects.filter(membership=JOIN, room_id__in=_joined_rooms([user_id])).values(
        "user_id"
    )


def users_sharing_a_room_with(user_ids: Sequence[str]) -> list[str]:
    """``user_ids`` and everyone joined to a room one of them is joined to."""
    others = (
        Membership.objects.filter(membership=JOIN, room_id__in=_joined_rooms(user_ids))
        .values_list("user_id", flat=True)
        .distinct()
    )
    return sorted({*user_ids, *others})


@dataclass
class DeviceListChanges:
    changed: list[str]
    left: list[str]


def device_list_changes(
    user_id: str,
    *,
    events: tuple[int, int],
    device_lists: tuple[int, int],
    events_final: bool = False,
) -> DeviceListChanges:
    """/sync's ``device_lists`` (and GET /keys/changes) for ``user_id`` between two tokens,
    given as (after, upto] ranges of the events and device_lists streams.

    ``changed``: users sharing a room with ``user_id`` now (and the user), whose device
    list changed in the range, or who started sharing a room in it (their join, or the
    user's own join to a room they are in). ``left``: users who stopped sharing every
    room (their leave or ban, or the user's own), with whom no room is shared now.

    Shared rooms are all rooms, not only encrypted ones, as Synapse does: ``changed``
    may name more users than needed (clients ignore users they do not track) and
    ``left`` names a user only once nothing at all is shared, so no client stops
    tracking a user it still shares an encrypted room with.

    Indexed range queries, never one per room: the device_lists range (when it moved),
    the membership events of the user's rooms in the events range (when it moved), and
    only when those found something, the memberships those events replaced, the members
    of rooms the user joined or left, and who is still shared.

    ``events_final``: the end of the events range was read as the current position (a
    /sync), so the events of the range may come from rooms.recent's shared read.
    """
    changed: set[str] = set()
    if device_lists[0] < device_lists[1]:
        changed.update(
            DeviceListChange.objects.filter(
                stream_id__gt=device_lists[0], stream_id__lte=device_lists[1]
            )
            .filter(Q(user_id=user_id) | Q(user_id__in=_sharing(user_id), owner_only=False))
            .values_list("user_id", flat=True)
            .distinct()
        )
    joined: set[str] = set()
    departed: set[str] = set()
    if events[0] < events[1]:
        joined, departed = _membership_news(user_id, events, final=events_final)
    candidates = (joined | departed) - {user_id}
    still_shared: set[str] = set()
    if candidates:
        still_shared = set(
            Membership.objects.filter(
                membership=JOIN,
                room_id__in=_joined_rooms([user_id]),
                user_id__in=sorted(candidates),
            )
            .values_list("user_id", flat=True)
            .distinct()
        )
    changed |= joined & still_shared
    left = departed - still_shared - {user_id}
    return DeviceListChanges(sorted(changed), sorted(left))


def _membership_news(
    user_id: str, events: tuple[int, int], *, final: bool
) -> tuple[set[str], set[str]]:
    """Users who joined, and users who left or were banned, in the rooms of ``user_id``
    in the events range; the members of rooms ``user_id`` itself joined or left count
    as joined or departed too."""
    news = recent.events_between(*events) if final else None
    if news is not None and not any(row.type == MEMBER for row in news):
        # The range is known to this process, and nobody joined or left anywhere.
        return set(), set()
    rows = list(
        Event.objects.filter(
            room_id__in=Membership.objects.filter(user_id=user_id).values("room_id"),
            type=MEMBER,
            stream_ordering__gt=events[0],
            stream_ordering__lte=events[1],
        )
        .exclude(state_key__isnull=True)
        .values_list("room_id", "state_key", "membership", "replaces_state")
    )
    if not rows:
        return set(), set()
    # A join that replaced a join is a profile change: nobody new to share with.
    replaced_ids = [r for _, _, m, r in rows if m == JOIN and r]
    was_joined = set(
        Event.objects.filter(event_id__in=replaced_ids, membership=JOIN).values_list(
            "event_id", flat=True
        )
        if replaced_ids
        else []
    )
    joined: set[str] = set()
    departed: set[str] = set()
    rooms_joined: set[int] = set()
    rooms_left: set[int] = set()
    for room_pk, member, membership, replaces in rows:
        if membership == JOIN:
            if replaces in was_joined:
                continue
            if member == user_id:
                rooms_joined.add(room_pk)
            else:
                joined.add(member)
        elif membership in ("leave", "ban"):
            if member == user_id:
                rooms_left.add(room_pk)
            else:
                departed.add(member)
    if rooms_joined or rooms_left:
        for room_pk, member in Membership.objects.filter(
            room_id__in=sorted(rooms_joined | rooms_left), membership=JOIN
        ).values_list("room_id", "user_id"):
            (joined if room_pk in rooms_joined else departed).add(member)
    return joined, departed


# --- Keys ---------------------------------------------------------------------------------

# Users per query: IN lists stay well under SQLite's limit on bound parameters.
_CHUNK = 500
# Clients read a missing signed_curve25519 count as zero, but some only if it is there
# (Synapse always sends it, for the same reason).
ALWAYS_COUNTED = "signed_curve25519"


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


# Marks a fallback key's row in the one query of :func:`key_counts`.
_UNUSED_FALLBACK = -1


def key_counts_query(user_id: str, device_id: str) -> tuple[str, list[Any]]:
    """The one query of :func:`key_counts`: (algorithm, count) per algorithm of unclaimed
    one-time keys, and (algorithm, -1) per unused fallback key. Every /sync asks,
    encrypted or not, so it is SQL (building the union through the ORM cost more than
    running it), which /sync runs along with its stream positions (sync.providers)."""
    one_time = connection.ops.quote_name(OneTimeKey._meta.db_table)
    fallback = connection.ops.quote_name(FallbackKey._meta.db_table)
    sql = (
        f"SELECT algorithm, COUNT(*) FROM {one_time} WHERE user_id = %s AND device_id = %s "
        f"GROUP BY algorithm UNION ALL SELECT algorithm, %s FROM {fallback} "
        "WHERE user_id = %s AND device_id = %s AND used = %s"
    )
    return sql, [user_id, device_id, _UNUSED_FALLBACK, user_id, device_id, False]


def key_counts(
    user_id: str, device_id: str, rows: Iterable[tuple[Any, Any]] | None = None
) -> tuple[dict[str, int], list[str]]:
    """/sync's one-time key counts and unused fallback key types of a device, from
    :func:`key_counts_query`'s ``rows`` (read here if not given)."""
    if rows is None:
        sql, params = key_counts_query(user_id, device_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    counts: dict[str, int] = {ALWAYS_COUNTED: 0}
    unused: list[str] = []
    for algorithm, n in rows:
        if n == _UNUSED_FALLBACK:
            unused.append(algorithm)
        else:
            counts[algorithm] = n
    return counts, sorted(unused)


def one_time_key_counts(user_id: str, device_id: str) -> dict[str, int]:
    """Unclaimed one-time keys of a device, per algorithm (/keys/upload's answer)."""
    return key_counts(user_id, device_id)[0]


def device_ed25519_keys(user_id: str) -> dict[str, str]:
    """Device ID -> ed25519 public key, for the devices of ``user_id`` that have keys."""
    return dict(DeviceKeys.objects.filter(user_id=user_id).values_list("device_id", "ed25519_key"))


def cross_signing_keys(user_id: str) -> dict[str, CrossSigningKey]:
    """usage -> key, for the cross-signing keys ``user_id`` has."""
    return {row.usage: row for row in CrossSigningKey.objects.filter(user_id=user_id)}


def _visible_signatures(
    requester: str, user_ids: list[str]
) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(target user, target key ID) -> [(signer, signer key ID, signature)] that
    ``requester`` may see ("Key and signature security"): those made by the key's owner,
    and the requester's own."""
    visible: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
    rows = (
        KeySignature.objects.filter(target_user_id__in=user_ids)
        .filter(Q(signer_user_id=F("target_user_id")) | Q(signer_user_id=requester))
        .values_list(
            "target_user_id", "target_key_id", "signer_user_id", "signer_key_id", "signature"
        )
    )
    for target_user, target_key, signer, signer_key, signature in rows:
        visible[(target_user, target_key)].append((signer, signer_key, signature))
    return visible


def _with_signatures(
    key_json: dict[str, Any], extra: list[tuple[str, str, str]]
) -> dict[str, Any]:
    if not extra:
        return key_json
    signatures = {
        signer: dict(by_key) for signer, by_key in (key_json.get("signatures") or {}).items()
    }
    for signer, signer_key, signature in extra:
        signatures.setdefault(signer, {})[signer_key] = signature
    return {**key_json, "signatures": signatures}


def query_local_keys(requester: str, wanted: Mapping[str, list[str]]) -> dict[str, Any]:
    """The keys of local users in ``wanted`` (user ID -> device IDs, empty: all), as
    POST /keys/query and /user/keys/query give them: ``device_keys``, ``master_keys``,
    ``self_signing_keys`` and ``user_signing_keys``. Other servers' users are left out.

    Devices without keys are left out; a user's user-signing key is only shown to the
    user (``requester``; for another server, its name: nobody's key).
    """
    wanted = {
        user_id: devices
        for user_id, devices in wanted.items()
        if parse_user_id(user_id).domain == settings.SERVER_NAME
    }
    device_keys: dict[str, dict[str, Any]] = {user_id: {} for user_id in wanted}
    master: dict[str, Any] = {}
    self_signing: dict[str, Any] = {}
    user_signing: dict[str, Any] = {}
    for users in _chunks(sorted(wanted)):
        signatures = _visible_signatures(requester, users)
        for user_id, device_id, key_json, display_name in DeviceKeys.objects.filter(
            user_id__in=users
        ).values_list("user_id", "device_id", "key_json", "owner__display_name"):
            devices = wanted[user_id]
            if devices and device_id not in devices:
                continue
            entry = _with_signatures(key_json, signatures.get((user_id, device_id), []))
            if display_name is not None:
                entry = {**entry, "unsigned": {"device_display_name": display_name}}
            device_keys[user_id][device_id] = entry
        for user_id, usage, public_key, key_json in CrossSigningKey.objects.filter(
            user_id__in=users
        ).values_list("user_id", "usage", "public_key", "key_json"):
            if usage == CrossSigningKey.MASTER:
                master[user_id] = _with_signatures(
                    key_json, signatures.get((user_id, public_key), [])
                )
            elif usage == CrossSigningKey.SELF_SIGNING:
                self_signing[user_id] = key_json
            elif usage == CrossSigningKey.USER_SIGNING and user_id == requester:
                user_signing[user_id] = key_json
    return {
        "device_keys": device_keys,
        "master_keys": master,
        "self_signing_keys": self_signing,
        "user_signing_keys": user_signing,
    }


@dataclass
class LocalDevice:
    """A local device as other servers are told of it (GET /user/devices,
    m.device_list_update): its display name and its keys with the owner's signatures."""

    device_id: str
    display_name: str | None
    keys: dict[str, Any] | None


def local_devices(user_id: str, device_ids: Iterable[str] | None = None) -> dict[str, LocalDevice]:
    """Device ID -> :class:`LocalDevice` of a local user's devices (only ``device_ids``,
    if given), with keys or not."""
    localpart = parse_user_id(user_id).localpart
    rows = Device.objects.filter(user__localpart=localpart)
    if device_ids is not None:
        rows = rows.filter(device_id__in=list(device_ids))
    found = list(rows.values_list("device_id", "display_name", "e2e_keys__key_json"))
    signatures = _visible_signatures(user_id, [user_id]) if any(k for _, _, k in found) else {}
    return {
        device_id: LocalDevice(
            device_id,
            display_name,
            _with_signatures(key_json, signatures.get((user_id, device_id), []))
            if key_json is not None
            else None,
        )
        for device_id, display_name, key_json in found
    }


def published_cross_signing_keys(user_id: str) -> dict[str, dict[str, Any]]:
    """The master and self-signing keys of a local user as other servers see them (the
    master key with the signatures the user made of it): usage -> key object."""
    keys = cross_signing_keys(user_id)
    published: dict[str, dict[str, Any]] = {}
    master = keys.get(CrossSigningKey.MASTER)
    if master is not None:
        own = _visible_signatures(user_id, [user_id]).get((user_id, master.public_key), [])
        published[CrossSigningKey.MASTER] = _with_signatures(master.key_json, own)
    self_signing = keys.get(CrossSigningKey.SELF_SIGNING)
    if self_signing is not None:
        published[CrossSigningKey.SELF_SIGNING] = self_signing.key_json
    return published


def device_list_stream_id(user_id: str) -> int:
    """The head of a local user's m.device_list_update sequence (0: none sent yet)."""
    head = (
        LocalDeviceListStream.objects.filter(user_id=user_id)
        .values_list("stream_id", flat=True)
        .first()
    )
    return head or 0


# --- Other servers' users -----------------------------------------------------------------


def _local_suffix() -> str:
    return ":" + settings.SERVER_NAME


def servers_sharing_a_room_with(user_id: str) -> set[str]:
    """The other servers with a user joined to a room ``user_id`` is joined to (and, for a
    room joined with partial state, those its join's answer named)."""
    members = (
        Membership.objects.filter(membership=JOIN, room_id__in=_joined_rooms([user_id]))
        .exclude(user_id__endswith=_local_suffix())
        .values_list("user_id", flat=True)
        .distinct()
    )
    servers = set()
    for member in members:
        try:
            servers.add(parse_user_id(member).domain)
        except ValueError:
            continue
    # Rooms joined with partial state know only some of their members yet.
    servers |= servers_of_partial_rooms(_joined_rooms([user_id]))
    servers.discard(settings.SERVER_NAME)
    return servers


def sharing_a_room_with_local_users(user_ids: Sequence[str]) -> set[str]:
    """Those of ``user_ids`` (other servers' users) joined to a room a local user is
    joined to: the users whose servers send this server their device list updates."""
    if not user_ids:
        return set()
    rooms: dict[int, set[str]] = defaultdict(set)
    for users in _chunks(sorted(set(user_ids))):
        for room_pk, user_id in Membership.objects.filter(
            user_id__in=users, membership=JOIN
        ).values_list("room_id", "user_id"):
            rooms[room_pk].add(user_id)
    if not rooms:
        return set()
    with_local = Membership.objects.filter(
        room_id__in=sorted(rooms), membership=JOIN, user_id__endswith=_local_suffix()
    ).values_list("room_id", flat=True)
    return {user_id for room_pk in set(with_local) for user_id in rooms[room_pk]}


def fresh_device_lists(user_ids: Sequence[str]) -> set[str]:
    """Those of ``user_ids`` (other servers' users) whose cached device list can answer
    for their server: held, not stale, and the user shares a room with a local user (so
    their server has been sending the updates)."""
    held = set(
        RemoteDeviceList.objects.filter(user_id__in=list(user_ids), stale=False).values_list(
            "user_id", flat=True
        )
    )
    return sharing_a_room_with_local_users(sorted(held)) if held else set()


def cached_keys(user_ids: Sequence[str], wanted: Mapping[str, list[str]]) -> dict[str, Any]:
    """The cached keys of remote ``user_ids``, as /keys/query gives them; ``wanted``: user
    ID -> device IDs (empty: all)."""
    device_keys: dict[str, dict[str, Any]] = {user_id: {} for user_id in user_ids}
    master: dict[str, Any] = {}
    self_signing: dict[str, Any] = {}
    for user_id, device_id, display_name, key_json in RemoteDevice.objects.filter(
        user_id__in=list(user_ids), key_json__isnull=False
    ).values_list("user_id", "device_id", "display_name", "key_json"):
        devices = wanted.get(user_id) or []
        if devices and device_id not in devices:
            continue
        entry = dict(key_json)
        if display_name is not None:
            entry["unsigned"] = {"device_display_name": display_name}
        device_keys[user_id][device_id] = entry
    for user_id, master_key, self_signing_key in RemoteDeviceList.objects.filter(
        user_id__in=list(user_ids)
    ).values_list("user_id", "master_key", "self_signing_key"):
        if master_key is not None:
            master[user_id] = master_key
            if self_signing_key is not None:
                self_signing[user_id] = self_signing_key
    return {"device_keys": device_keys, "master_keys": master, "self_signing_keys": self_signing}


def remote_device_ed25519_keys(user_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    """(user ID, device ID) -> the ed25519 key of the cached remote devices of
    ``user_ids`` that have keys."""
    found: dict[tuple[str, str], str] = {}
    for user_id, device_id, key_json in RemoteDevice.objects.filter(
        user_id__in=list(user_ids), key_json__isnull=False
    ).values_list("user_id", "device_id", "key_json"):
        key = (key_json.get("keys") or {}).get(f"ed25519:{device_id}")
        if isinstance(key, str):
            found[(user_id, device_id)] = key
    return found
