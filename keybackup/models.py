"""Server-side key backups (Client-Server API, "Server-side key backups").

A user's backups are numbered versions; the newest one not deleted is the current
one, the only one keys may be uploaded to. The server never sees a key in the clear:
``session_data`` is encrypted by the client for the backup's ``auth_data`` public key.
"""

from __future__ import annotations

from django.db import models

from accounts.models import User


class BackupVersion(models.Model):
    """One backup of a user's room keys.

    ``version`` counts up per user and is never reused: a deleted backup stays as a
    tombstone (``deleted``, no keys, ``auth_data`` cleared), so a client still holding
    its number is told it is gone rather than finding another backup under it.
    ``etag`` is bumped in the transaction of every change to the backup's keys.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="key_backups")
    version = models.BigIntegerField()
    algorithm = models.CharField(max_length=255)
    auth_data = models.JSONField(default=dict)
    etag = models.BigIntegerField(default=0)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "version"], name="key_backup_version_unique")
        ]

    def __str__(self) -> str:
        return f"key backup {self.version} of {self.user}"


class BackupSession(models.Model):
    """The backed-up key of one megolm session in one room.

    At most one per (backup, room, session): an upload for a session already stored
    replaces it only when the new key is better (see ``keybackup.services.is_better``).
    """

    backup = models.ForeignKey(BackupVersion, on_delete=models.CASCADE, related_name="sessions")
    room_id = models.CharField(max_length=255)
    session_id = models.CharField(max_length=255)
    first_message_index = models.BigIntegerField()
    forwarded_count = models.BigIntegerField()
    is_verified = models.BooleanField()
    session_data = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["backup", "room_id", "session_id"], name="key_backup_session_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.room_id} {self.session_id}"
