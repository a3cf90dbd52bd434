"""Reads of server-side key backups: a user only ever sees their own backups."""

from __future__ import annotations

import re
from typing import Any

from accounts.models import User
from keybackup.models import BackupSession, BackupVersion
from protocol.errors import MatrixError, not_found

# Versions are this server's decimal counters: "1", "2", ... (an opaque string to clients).
_VERSION = re.compile(r"[1-9][0-9]{0,17}")


def parse_version(version: str) -> int | None:
    """The number behind a version string, or None if no backup can have it."""
    return int(version) if _VERSION.fullmatch(version) else None


def unknown_version() -> MatrixError:
    return not_found("Unknown backup version")


def current_version(user: User) -> BackupVersion | None:
    """The user's newest backup that is not deleted: the one keys are uploaded to."""
    return BackupVersion.objects.filter(user=user, deleted=False).order_by("-version").first()


def _version(user: User, version: str) -> BackupVersion:
    """The user's backup ``version``; M_NOT_FOUND if it never existed or is deleted."""
    number = parse_version(version)
    backup = (
        BackupVersion.objects.filter(user=user, version=number, deleted=False).first()
        if number is not None
        else None
    )
    if backup is None:
        raise unknown_version()
    return backup


def version_info(user: User, version: str | None) -> dict[str, Any]:
    """GET /room_keys/version[/{version}]: the backup's configuration, key count and etag;
    without ``version``, the current backup's."""
    if version is None:
        backup = current_version(user)
        if backup is None:
            raise not_found("No current backup version")
    else:
        backup = _version(user, version)
    return {
        "algorithm": backup.algorithm,
        "auth_data": backup.auth_data,
        "count": BackupSession.objects.filter(backup=backup).count(),
        "etag": str(backup.etag),
        "version": str(backup.version),
    }


def _key_data(row: BackupSession) -> dict[str, Any]:
    return {
        "first_message_index": row.first_message_index,
        "forwarded_count": row.forwarded_count,
        "is_verified": row.is_verified,
        "session_data": row.session_data,
    }


def room_keys(user: User, version: str) -> dict[str, Any]:
    """GET /room_keys/keys: ``{"rooms": {roomId: {"sessions": {sessionId: KeyBackupData}}}}``."""
    backup = _version(user, version)
    rooms: dict[str, Any] = {}
    for row in BackupSession.objects.filter(backup=backup).order_by("room_id", "session_id"):
        rooms.setdefault(row.room_id, {"sessions": {}})["sessions"][row.session_id] = _key_data(
            row
        )
    return {"rooms": rooms}


def room_keys_for_room(user: User, version: str, room_id: str) -> dict[str, Any]:
    """GET /room_keys/keys/{roomId}: ``{"sessions": {...}}``, empty if the room has none."""
    backup = _version(user, version)
    rows = BackupSession.objects.filter(backup=backup, room_id=room_id).order_by("session_id")
    return {"sessions": {row.session_id: _key_data(row) for row in rows}}


def room_key(user: User, version: str, room_id: str, session_id: str) -> dict[str, Any]:
    """GET /room_keys/keys/{roomId}/{sessionId}: one KeyBackupData, or M_NOT_FOUND."""
    backup = _version(user, version)
    row = BackupSession.objects.filter(
        backup=backup, room_id=room_id, session_id=session_id
    ).first()
    if row is None:
        raise not_found("Key not found")
    return _key_data(row)
