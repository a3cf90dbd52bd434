"""Publishing and claiming device keys: POST /keys/upload and POST /keys/claim
(Client-Server API, "End-to-End Encryption", "Key Distribution").

Every key is checked before anything is written (protocol.e2e_keys), so a refused
upload stores nothing. A one-time key is claimed by a single DELETE ... RETURNING of the
oldest key, which hands each key out at most once whatever runs concurrently (on
PostgreSQL with FOR UPDATE SKIP LOCKED, so concurrent claims take different keys
instead of queueing; SQLite runs one writer at a time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from accounts.models import Device
from e2ee import federation_out, selectors
from e2ee.models import DeviceKeys, FallbackKey, KeySignature, OneTimeKey
from e2ee.services import device_lists
from protocol import e2e_keys
from protocol.errors import bad_json, invalid_param
from protocol.identifiers import parse_user_id
from protocol.signing import VerifyKey

# One upload may carry this many one-time keys (clients send tens at a time); a device
# may hold this many unclaimed.
MAX_ONE_TIME_KEYS_PER_UPLOAD = 1000
MAX_ONE_TIME_KEYS_PER_DEVICE = 10000


def _keys_map(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_json(f"'{name}' must be an object")
    return value


def do_upload_keys(
    device: Device,
    *,
    device_keys: Any = None,
    one_time_keys: Any = None,
    fallback_keys: Any = None,
) -> dict[str, int]:
    """POST /keys/upload for ``device``; returns its one-time key counts.

    Identity keys are replaced when they differ (re-keying a device drops the
    signatures others made of the old keys and announces a device list change); an
    upload of the same keys changes nothing. A one-time key ID already held with other
    contents is refused. One fallback key per algorithm is kept; a new one is unused.
    """
    user_id = device.user.user_id
    one_time_keys = _keys_map(one_time_keys, "one_time_keys")
    fallback_keys = _keys_map(fallback_keys, "fallback_keys")
    if len(one_time_keys) > MAX_ONE_TIME_KEYS_PER_UPLOAD:
        raise e2e_keys.too_large(
            f"At most {MAX_ONE_TIME_KEYS_PER_UPLOAD} one-time keys per upload"
        )
    # Signatures are checked before the transaction: no lock is held while verifying
    # (on SQLite a transaction holds the database's write lock).
    stored_key = (
        DeviceKeys.objects.filter(owner=device).values_list("ed25519_key", flat=True).first()
    )
    new_identity = (
        e2e_keys.check_device_keys(device_keys, user_id, device.device_id)
        if device_keys is not None
        else None
    )
    verify_key: VerifyKey | None = None
    if new_identity is not None:
        verify_key = new_identity.verify_key
    elif stored_key is not None:
        verify_key = e2e_keys.ed25519_verify_key(device.device_id, stored_key)
    otks = [
        e2e_keys.check_one_time_key(key_id, value, user_id, verify_key)
        for key_id, value in one_time_keys.items()
    ]
    fallbacks = [
        e2e_keys.check_one_time_key(key_id, value, user_id, verify_key, fallback=True)
        for key_id, value in fallback_keys.items()
    ]
    if len({k.algorithm for k in fallbacks}) != len(fallbacks):
        raise invalid_param("At most one fallback key per algorithm")
    with transaction.atomic():
        # One upload per device at a time (PostgreSQL; SQLite runs one writer anyway).
        Device.objects.select_for_update().filter(pk=device.pk).first()
        stored = DeviceKeys.objects.filter(owner=device).first()
        if new_identity is None and otks + fallbacks and _rekeyed(stored, stored_key):
            raise invalid_param("The device's keys changed during this upload; try again")
        new_otks = _new_one_time_keys(device, user_id, otks)

        if new_identity is not None and (stored is None or stored.key_json != new_identity.json):
            _store_identity(device, user_id, stored, new_identity)
        if new_otks:
            OneTimeKey.objects.bulk_create(
                [
                    OneTimeKey(
                        owner=device,
                        user_id=user_id,
                        device_id=device.device_id,
                        algorithm=key.algorithm,
                        key_id=key.key_id,
                        key_json=key.json,
                    )
                    for key in new_otks
                ],
                # A concurrent upload of the same key by the same device stored it.
                ignore_conflicts=True,
            )
        for key in fallbacks:
            _store_fallback(device, user_id, key)
    return selectors.one_time_key_counts(user_id, device.device_id)


def _rekeyed(stored: DeviceKeys | None, checked_against: str | None) -> bool:
    return (stored.ed25519_key if stored is not None else None) != checked_against


def _new_one_time_keys(
    device: Device, user_id: str, keys: list[e2e_keys.OneTimeKey]
) -> list[e2e_keys.OneTimeKey]:
    """The keys not held yet; M_INVALID_PARAM for a held key ID with other contents,
    M_TOO_LARGE past the device's limit."""
    if not keys:
        return []
    held = {
        (algorithm, key_id): key_json
        for algorithm, key_id, key_json in OneTimeKey.objects.filter(
            user_id=user_id, device_id=device.device_id, key_id__in=[k.key_id for k in keys]
        ).values_list("algorithm", "key_id", "key_json")
    }
    new: dict[tuple[str, str], e2e_keys.OneTimeKey] = {}
    for key in keys:
        existing = held.get((key.algorithm, key.key_id))
        if existing is None:
            new[(key.algorithm, key.key_id)] = key
        elif existing != key.json:
            raise invalid_param(
                f"One-time key {key.algorithm}:{key.key_id} already exists with other contents"
            )
    if new:
        count = OneTimeKey.objects.filter(user_id=user_id, device_id=device.device_id).count()
        if count + len(new) > MAX_ONE_TIME_KEYS_PER_DEVICE:
            raise e2e_keys.too_large(
                f"A device may hold at most {MAX_ONE_TIME_KEYS_PER_DEVICE} one-time keys"
            )
    return list(new.values())


def _store_identity(
    device: Device, user_id: str, stored: DeviceKeys | None, new: e2e_keys.DeviceKeys
) -> None:
    if stored is None:
        DeviceKeys.objects.create(
            owner=device,
            user_id=user_id,
            device_id=device.device_id,
            ed25519_key=new.ed25519,
            key_json=new.json,
        )
    else:
        if e2e_keys.without_signatures(stored.key_json) != e2e_keys.without_signatures(new.json):
            # Signatures of the old keys do not sign the new ones.
            KeySignature.objects.filter(
                target_user_id=user_id, target_key_id=device.device_id
            ).delete()
        stored.ed25519_key = new.ed25519
        stored.key_json = new.json
        stored.save(update_fields=["ed25519_key", "key_json"])
    device_lists.do_mark_changed([user_id])
    federation_out.queue_device_list_update(user_id, [device.device_id])


def _store_fallback(device: Device, user_id: str, key: e2e_keys.OneTimeKey) -> None:
    current = FallbackKey.objects.filter(
        user_id=user_id, device_id=device.device_id, algorithm=key.algorithm
    ).first()
    if current is None:
        FallbackKey.objects.create(
            owner=device,
            user_id=user_id,
            device_id=device.device_id,
            algorithm=key.algorithm,
            key_id=key.key_id,
            key_json=key.json,
        )
    elif current.key_id != key.key_id or current.key_json != key.json:
        current.key_id = key.key_id
        current.key_json = key.json
        current.used = False
        current.save(update_fields=["key_id", "key_json", "used"])


# --- claiming -------------------------------------------------------------------------------


@dataclass
class Claimed:
    one_time_keys: dict[str, dict[str, dict[str, Any]]]
    failures: dict[str, Any]


# Devices one POST /keys/claim may ask keys of: above what a client needs for the largest
# encrypted rooms it is likely to send to, and the bound of the request's work.
MAX_CLAIMED_DEVICES = 10_000
# Devices claimed per transaction: a big claim never holds the database (SQLite's one
# writer) for long; each key is still handed out at most once (one DELETE each).
CLAIM_BATCH = 100


def check_claims(claims: Any) -> dict[str, dict[str, str]]:
    """``one_time_keys`` of POST /keys/claim: user ID -> device ID -> algorithm."""
    if not isinstance(claims, dict):
        raise bad_json("'one_time_keys' must be an object")
    devices = sum(len(v) for v in claims.values() if isinstance(v, dict))
    if devices > MAX_CLAIMED_DEVICES:
        raise invalid_param(
            f"Cannot claim keys of more than {MAX_CLAIMED_DEVICES} devices at once"
        )
    for user_id, by_device in claims.items():
        try:
            parse_user_id(user_id)
        except ValueError:
            raise invalid_param(f"Invalid user ID {user_id[:300]!r}") from None
        if not isinstance(by_device, dict) or not all(
            isinstance(a, str) for a in by_device.values()
        ):
            raise bad_json(f"'one_time_keys.{user_id}' must map device IDs to algorithms")
    return claims


def do_claim_local_keys(claims: Mapping[str, Mapping[str, str]]) -> Claimed:
    """POST /keys/claim and /user/keys/claim, for the local users of ``claims`` (others
    are left out): one key per device asked for, a one-time key while any is left, else
    the device's fallback key (which is then marked used). Claimed in batches of
    ``CLAIM_BATCH`` devices, a short transaction each."""
    result = Claimed({}, {})
    local: list[tuple[str, str, str]] = []
    for user_id, by_device in claims.items():
        if parse_user_id(user_id).domain != settings.SERVER_NAME:
            continue
        local.extend((user_id, device_id, algorithm) for device_id, algorithm in by_device.items())
    for start in range(0, len(local), CLAIM_BATCH):
        with transaction.atomic():
            for user_id, device_id, algorithm in local[start : start + CLAIM_BATCH]:
                claimed = _claim_one_time_key(user_id, device_id, algorithm)
                if claimed is None:
                    claimed = _claim_fallback_key(user_id, device_id, algorithm)
                if claimed is not None:
                    key_id, key_json = claimed
                    result.one_time_keys.setdefault(user_id, {})[device_id] = {
                        f"{algorithm}:{key_id}": key_json
                    }
    return result


def _claim_sql() -> str:
    table = OneTimeKey._meta.db_table
    oldest = (
        f"SELECT id FROM {table} WHERE user_id = %s AND device_id = %s AND algorithm = %s "
        "ORDER BY id LIMIT 1"
    )
    if connection.vendor == "postgresql":
        oldest += " FOR UPDATE SKIP LOCKED"
    return f"DELETE FROM {table} WHERE id = ({oldest}) RETURNING key_id, key_json"


def _claim_one_time_key(user_id: str, device_id: str, algorithm: str) -> tuple[str, Any] | None:
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), [user_id, device_id, algorithm])
        row = cursor.fetchone()
    if row is None:
        return None
    key_id, key_json = row
    # The JSON column comes back as text from a raw query (SQLite, and Django's psycopg
    # setup for jsonb).
    return key_id, json.loads(key_json) if isinstance(key_json, str) else key_json


def _claim_fallback_key(user_id: str, device_id: str, algorithm: str) -> tuple[str, Any] | None:
    fallback = (
        FallbackKey.objects.filter(user_id=user_id, device_id=device_id, algorithm=algorithm)
        .values_list("pk", "key_id", "key_json", "used")
        .first()
    )
    if fallback is None:
        return None
    pk, key_id, key_json, used = fallback
    if not used:
        FallbackKey.objects.filter(pk=pk).update(used=True)
    return key_id, key_json


def check_query(device_keys: Any) -> dict[str, list[str]]:
    """``device_keys`` of POST /keys/query: user ID -> device IDs (empty: all)."""
    if not isinstance(device_keys, dict):
        raise bad_json("'device_keys' must be an object")
    for user_id, devices in device_keys.items():
        try:
            parse_user_id(user_id)
        except ValueError:
            raise invalid_param(f"Invalid user ID {user_id[:300]!r}") from None
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise bad_json(f"'device_keys.{user_id}' must be a list of device IDs")
    return device_keys
