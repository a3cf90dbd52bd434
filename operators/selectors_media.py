"""What the admin API reads about media: one item's record, a room's media, and the
users' media usage statistics."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum

from accounts.models import User
from media import ids
from media.models import LocalMedia, RemoteMedia
from media.services import moderation
from protocol.errors import MatrixError

# order_by values of GET /_synapse/admin/v1/statistics/users/media.
USER_MEDIA_ORDERS = ("user_id", "displayname", "media_length", "media_count")


def media_info(server_name: str, media_id: str) -> dict[str, Any]:
    """GET /_synapse/admin/v1/media/{serverName}/{mediaId}: Synapse's ``media_info``."""
    if not ids.MEDIA_ID_RE.match(media_id):
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    if ids.is_local(server_name):
        local = LocalMedia.objects.filter(media_id=media_id).first()
        if local is None:
            raise MatrixError("M_NOT_FOUND", "Unknown media")
        return {
            "media_origin": server_name,
            "user_id": local.user_id or None,
            "media_id": local.media_id,
            "media_type": local.content_type,
            "media_length": local.size,
            "upload_name": local.upload_name,
            "created_ts": local.created_ts,
            "filesystem_id": local.storage_name or None,
            # URL previews keep their images as media with no uploader.
            "url_cache": None if local.user_id else "url_preview",
            "last_access_ts": None,
            "quarantined_by": local.quarantined_by,
            "authenticated": local.authenticated_only,
            "safe_from_quarantine": local.safe_from_quarantine,
            "sha256": local.sha256 or None,
        }
    remote = RemoteMedia.objects.filter(origin=server_name, media_id=media_id).first()
    if remote is None or not remote.is_cached:
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    return {
        "media_origin": server_name,
        "user_id": None,
        "media_id": remote.media_id,
        "media_type": remote.content_type,
        "media_length": remote.size,
        "upload_name": remote.upload_name,
        "created_ts": remote.created_ts,
        "filesystem_id": remote.file_id,
        "url_cache": None,
        "last_access_ts": None,
        "quarantined_by": remote.quarantined_by,
        "authenticated": remote.authenticated_only,
        "safe_from_quarantine": None,
        "sha256": remote.sha256 or None,
    }


def room_media(room_id: str) -> dict[str, list[str]]:
    """GET /_synapse/admin/v1/room/{roomId}/media: the mxc URIs the room's messages point
    at, this server's and others' (encrypted events' are unreadable here)."""
    local, remote = [], []
    for server_name, media_id in sorted(moderation.mxc_in_room(room_id)):
        uri = ids.mxc_uri(media_id, server_name)
        (local if ids.is_local(server_name) else remote).append(uri)
    return {"local": local, "remote": remote}


def users_media(
    *,
    start: int,
    limit: int,
    order_by: str,
    backwards: bool,
    from_ts: int | None,
    until_ts: int | None,
    search_term: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """GET /_synapse/admin/v1/statistics/users/media: local users with uploads, their
    media count and total size."""
    media = LocalMedia.objects.exclude(user_id="").filter(uploaded_ts__isnull=False)
    if from_ts is not None:
        media = media.filter(created_ts__gte=from_ts)
    if until_ts is not None:
        media = media.filter(created_ts__lte=until_ts)
    usage = {
        row["user_id"]: (row["media_count"], row["media_length"] or 0)
        for row in media.values("user_id").annotate(
            media_count=Count("id"), media_length=Sum("size")
        )
    }
    localparts = {user_id[1:].split(":", 1)[0]: user_id for user_id in usage}
    users = User.objects.filter(localpart__in=list(localparts))
    if search_term:
        users = users.filter(
            Q(localpart__icontains=search_term) | Q(profile__displayname__icontains=search_term)
        )
    rows = []
    for user in users:
        user_id = localparts[user.localpart]
        count, length = usage[user_id]
        rows.append(
            {
                "user_id": user_id,
                "displayname": user.displayname,
                "media_count": count,
                "media_length": length,
            }
        )

    def key(row: dict[str, Any]) -> Any:
        value = row[order_by]
        # Users without a display name sort last, as NULLS LAST.
        return value if order_by.startswith("media_") else (value is None, value or "")

    rows.sort(key=lambda r: r["user_id"])
    rows.sort(key=key, reverse=backwards)
    return rows[start : start + limit], len(rows)
