"""The write path of server-side key backups (Client-Server API, "Server-side key backups").

Every change to a backup's keys locks the backup's row first (``select_for_update``;
on SQLite the IMMEDIATE transactions queue writers already), so two uploads at once
neither lose a key nor miscount, and a backup deleted meanwhile is seen as deleted.
Creating a version locks the user's row, so two creations never get the same number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max, Q

from accounts.models import User
from keybackup.models import BackupSession, BackupVersion
from keybackup.selectors import current_version, parse_version, unknown_version
from protocol.errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from protocol.identifiers import parse_user_id, require_room_id

MEGOLM_BACKUP_V1 = "m.megolm_backup.v1.curve25519-aes-sha2"
# The backup algorithms the spec defines; each has its own auth_data format.
ALGORITHMS = frozenset({MEGOLM_BACKUP_V1})
MAX_SESSION_ID_LENGTH = 255
# Counters are stored as 64-bit integers; canonical JSON's integer range keeps them there.
MAX_INTEGER = 2**53 - 1
# Rows per query when looking up or writing many sessions at once.
_BATCH = 500


@dataclass(frozen=True)
class KeyData:
    """A backed-up session key as a client uploads it (KeyBackupData)."""

    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: dict[str, Any]


@dataclass(frozen=True)
class KeysCount:
    """What every change to a backup's keys answers (RoomKeysUpdateResponse)."""

    etag: str
    count: int


# --- Validation ------------------------------------------------------------------------


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise invalid_param(f"Unsupported backup algorithm {algorithm!r}")
    return algorithm


def check_auth_data(algorithm: str, auth_data: dict[str, Any]) -> dict[str, Any]:
    """``auth_data`` in the algorithm's format (for m.megolm_backup.v1.curve25519-aes-sha2:
    a ``public_key`` string and optionally a ``signatures`` object)."""
    if algorithm == MEGOLM_BACKUP_V1:
        if "public_key" not in auth_data:
            raise missing_param("auth_data.public_key")
        public_key = auth_data["public_key"]
        if not isinstance(public_key, str):
            raise bad_json("'auth_data.public_key' must be a string")
        if not public_key:
            raise invalid_param("'auth_data.public_key' must not be empty")
        if "signatures" in auth_data and not isinstance(auth_data["signatures"], dict):
            raise bad_json("'auth_data.signatures' must be an object")
    return auth_data


def _counter(data: dict[str, Any], key: str, where: str) -> int:
    if key not in data:
        raise missing_param(f"{where}.{key}")
    value = data[key]
    # bool is an int in Python; JSON keeps them apart.
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_json(f"'{where}.{key}' must be an integer")
    if not 0 <= value <= MAX_INTEGER:
        raise invalid_param(f"'{where}.{key}' must be between 0 and {MAX_INTEGER}")
    return value


def check_key_data(data: Any, where: str = "body") -> KeyData:
    """One KeyBackupData object; every field is required."""
    if not isinstance(data, dict):
        raise bad_json(f"'{where}' must be an object")
    first_message_index = _counter(data, "first_message_index", where)
    forwarded_count = _counter(data, "forwarded_count", where)
    if "is_verified" not in data:
        raise missing_param(f"{where}.is_verified")
    if not isinstance(data["is_verified"], bool):
        raise bad_json(f"'{where}.is_verified' must be a boolean")
    if "session_data" not in data:
        raise missing_param(f"{where}.session_data")
    if not isinstance(data["session_data"], dict):
        raise bad_json(f"'{where}.session_data' must be an object")
    return KeyData(first_message_index, forwarded_count, data["is_verified"], data["session_data"])


def check_session_id(session_id: str) -> str:
    if not session_id or len(session_id) > MAX_SESSION_ID_LENGTH:
        raise invalid_param(f"A session ID must be 1 to {MAX_SESSION_ID_LENGTH} characters")
    return session_id


def check_sessions(room_id: str, sessions: Any, where: str = "sessions") -> dict[str, KeyData]:
    """A RoomKeyBackup's ``sessions``: session ID -> KeyBackupData."""
    require_room_id(room_id)
    if not isinstance(sessions, dict):
        raise bad_json(f"'{where}' must be an object")
    return {
        check_session_id(session_id): check_key_data(data, f"{where}.{session_id}")
        for session_id, data in sessions.items()
    }


def check_rooms(rooms: Any) -> dict[str, dict[str, KeyData]]:
    """``rooms`` of PUT /room_keys/keys: room ID -> RoomKeyBackup."""
    if not isinstance(rooms, dict):
        raise bad_json("'rooms' must be an object")
    checked: dict[str, dict[str, KeyData]] = {}
    for room_id, backup in rooms.items():
        require_room_id(room_id)
        if not isinstance(backup, dict):
            raise bad_json(f"'rooms.{room_id}' must be an object")
        if "sessions" not in backup:
            raise missing_param(f"rooms.{room_id}.sessions")
        checked[room_id] = check_sessions(room_id, backup["sessions"], f"rooms.{room_id}.sessions")
    return checked


def is_better(new: KeyData, stored: BackupSession) -> bool:
    """Whether ``new`` replaces the stored key of the same session.

    Client-Server API, "Server-side key backups": keep the verified key; with equal
    ``is_verified``, the lower ``first_message_index``; with that equal too, the lower
    ``forwarded_count``. A key equal on all three keeps the stored one.
    """
    return (not new.is_verified, new.first_message_index, new.forwarded_count) < (
        not stored.is_verified,
        stored.first_message_index,
        stored.forwarded_count,
    )


# --- Versions --------------------------------------------------------------------------


def _locked_version(user: User, version: str) -> BackupVersion | None:
    number = parse_version(version)
    if number is None:
        return None
    return BackupVersion.objects.select_for_update().filter(user=user, version=number).first()


def do_create_version(user: User, algorithm: str, auth_data: dict[str, Any]) -> str:
    """POST /room_keys/version: a new backup, which becomes the current one.

    Locks the user's row: the next number is one above every version the user ever
    had, deleted ones included, so a number is never reused.
    """
    check_algorithm(algorithm)
    check_auth_data(algorithm, auth_data)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        highest = BackupVersion.objects.filter(user=user).aggregate(n=Max("version"))["n"]
        backup = BackupVersion.objects.create(
            user=user, version=(highest or 0) + 1, algorithm=algorithm, auth_data=auth_data
        )
    return str(backup.version)


def do_update_version(
    user: User,
    version: str,
    algorithm: str,
    auth_data: dict[str, Any],
    body_version: str | None,
) -> None:
    """PUT /room_keys/version/{version}: replace ``auth_data``; the algorithm stays."""
    if body_version is not None and body_version != version:
        raise invalid_param("The version in the body does not match the path")
    with transaction.atomic():
        backup = _locked_version(user, version)
        if backup is None or backup.deleted:
            raise unknown_version()
        if algorithm != backup.algorithm:
            raise invalid_param("Algorithm does not match")
        check_auth_data(algorithm, auth_data)
        backup.auth_data = auth_data
        backup.save(update_fields=["auth_data"])


def do_delete_version(user: User, version: str) -> None:
    """DELETE /room_keys/version/{version}: the backup and all its keys.

    A backup deleted before is deleted again without error (the spec asks for
    success); one that never existed is M_NOT_FOUND.
    """
    with transaction.atomic():
        backup = _locked_version(user, version)
        if backup is None:
            raise unknown_version()
        if not backup.deleted:
            _delete(backup)


def _delete(backup: BackupVersion) -> None:
    BackupSession.objects.filter(backup=backup).delete()
    backup.deleted = True
    backup.auth_data = {}
    backup.etag += 1
    backup.save(update_fields=["deleted", "auth_data", "etag"])


def do_delete_all_backups(user_id: str) -> None:
    """Every backup of a deactivated user, in the deactivation's transaction."""
    localpart = parse_user_id(user_id).localpart
    backups = BackupVersion.objects.select_for_update().filter(
        user__localpart=localpart, deleted=False
    )
    for backup in backups:
        _delete(backup)


# --- Keys ------------------------------------------------------------------------------


def _keys_count(backup: BackupVersion) -> KeysCount:
    return KeysCount(str(backup.etag), BackupSession.objects.filter(backup=backup).count())


def _stored(
    backup: BackupVersion, rooms: dict[str, dict[str, KeyData]]
) -> dict[tuple[str, str], BackupSession]:
    """The stored keys of the sessions in ``rooms``, in queries of a bounded size."""
    wanted = [
        (room_id, session_id) for room_id, sessions in rooms.items() for session_id in sessions
    ]
    found: dict[tuple[str, str], BackupSession] = {}
    for start in range(0, len(wanted), _BATCH):
        by_room: dict[str, list[str]] = {}
        for room_id, session_id in wanted[start : start + _BATCH]:
            by_room.setdefault(room_id, []).append(session_id)
        match = Q()
        for room_id, session_ids in by_room.items():
            match |= Q(room_id=room_id, session_id__in=session_ids)
        for row in BackupSession.objects.filter(match, backup=backup).defer("session_data"):
            found[(row.room_id, row.session_id)] = row
    return found


def do_upload_keys(user: User, version: str, rooms: dict[str, dict[str, KeyData]]) -> KeysCount:
    """PUT /room_keys/keys[/{roomId}[/{sessionId}]]: store keys in the current backup.

    ``rooms`` is checked already (``check_rooms``). A key for a session already stored
    replaces it only if it is better (``is_better``). Only the current backup takes
    keys: another one that exists is M_WRONG_ROOM_KEYS_VERSION (403) with the current
    version. The etag moves if any key was stored.
    """
    with transaction.atomic():
        backup = _locked_version(user, version)
        if backup is None:
            raise unknown_version()
        current = current_version(user)
        if current is None:
            raise not_found("No current backup version")
        if backup.pk != current.pk:
            raise MatrixError(
                "M_WRONG_ROOM_KEYS_VERSION",
                "Wrong backup version",
                current_version=str(current.version),
            )
        stored = _stored(backup, rooms)
        created: list[BackupSession] = []
        replaced: list[BackupSession] = []
        for room_id, sessions in rooms.items():
            for session_id, key in sessions.items():
                row = stored.get((room_id, session_id))
                if row is None:
                    row = BackupSession(backup=backup, room_id=room_id, session_id=session_id)
                    created.append(row)
                elif is_better(key, row):
                    replaced.append(row)
                else:
                    continue
                row.first_message_index = key.first_message_index
                row.forwarded_count = key.forwarded_count
                row.is_verified = key.is_verified
                row.session_data = key.session_data
        BackupSession.objects.bulk_create(created, batch_size=_BATCH)
        BackupSession.objects.bulk_update(
            replaced,
            ["first_message_index", "forwarded_count", "is_verified", "session_data"],
            batch_size=_BATCH,
        )
        if created or replaced:
            backup.etag += 1
            backup.save(update_fields=["etag"])
        return _keys_count(backup)


def do_delete_keys(
    user: User, version: str, room_id: str | None = None, session_id: str | None = None
) -> KeysCount:
    """DELETE /room_keys/keys[/{roomId}[/{sessionId}]]: remove keys from a backup (any
    backup not deleted, not only the current one). The etag moves if a key went."""
    with transaction.atomic():
        backup = _locked_version(user, version)
        if backup is None or backup.deleted:
            raise unknown_version()
        keys = BackupSession.objects.filter(backup=backup)
        if room_id is not None:
            keys = keys.filter(room_id=room_id)
        if session_id is not None:
            keys = keys.filter(session_id=session_id)
        removed, _ = keys.delete()
        if removed:
            backup.etag += 1
            backup.save(update_fields=["etag"])
        return _keys_count(backup)
