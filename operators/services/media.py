"""Operator actions on media: quarantine and release, protect, delete.

They act through media.services.moderation (the same functions the media admin pages
use) and write the audit entry in the same transaction. A media item is named by its
server and ID; this server's own items are ``LocalMedia``, other servers' are the
cached ``RemoteMedia``.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet

from media import ids
from media.models import LocalMedia, RemoteMedia
from media.services import moderation
from operators.services import audit
from protocol.errors import MatrixError, invalid_param


def _one(server_name: str, media_id: str) -> QuerySet[LocalMedia] | QuerySet[RemoteMedia]:
    if not ids.MEDIA_ID_RE.match(media_id):
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    if ids.is_local(server_name):
        return LocalMedia.objects.filter(media_id=media_id)
    return RemoteMedia.objects.filter(origin=server_name, media_id=media_id)


def _existing(server_name: str, media_id: str) -> QuerySet[LocalMedia] | QuerySet[RemoteMedia]:
    media = _one(server_name, media_id)
    if not media.exists():
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    return media


def quarantine_media(
    server_name: str, media_id: str, *, actor: str, via: str = "api", ip: str = ""
) -> int:
    """Serve this item to nobody; how many were newly quarantined (0 or 1: a protected
    or already quarantined item is left as it is)."""
    with transaction.atomic():
        count = moderation.do_quarantine(_existing(server_name, media_id), actor)
        audit.record(actor, "media.quarantine", ids.mxc_uri(media_id, server_name), via=via, ip=ip)
    return count


def unquarantine_media(
    server_name: str, media_id: str, *, actor: str, via: str = "api", ip: str = ""
) -> int:
    with transaction.atomic():
        count = moderation.do_unquarantine(_existing(server_name, media_id))
        target = ids.mxc_uri(media_id, server_name)
        audit.record(actor, "media.unquarantine", target, via=via, ip=ip)
    return count


def quarantine_room_media(room_id: str, *, actor: str, via: str = "api", ip: str = "") -> int:
    """Quarantine the local and cached remote media the room's messages point at."""
    with transaction.atomic():
        count = moderation.do_quarantine(moderation.media_in_room(room_id), actor)
        count += moderation.do_quarantine(moderation.remote_media_in_room(room_id), actor)
        audit.record(actor, "media.quarantine_room", room_id, via=via, ip=ip, count=count)
    return count


def quarantine_user_media(user_id: str, *, actor: str, via: str = "api", ip: str = "") -> int:
    """Quarantine everything a local user uploaded."""
    with transaction.atomic():
        count = moderation.do_quarantine(moderation.media_of_user(user_id), actor)
        audit.record(actor, "media.quarantine_user", user_id, via=via, ip=ip, count=count)
    return count


def _set_protected(media_id: str, protected: bool, actor: str, via: str, ip: str) -> None:
    with transaction.atomic():
        media = _existing_local(media_id)
        media.update(safe_from_quarantine=protected)
        action = "media.protect" if protected else "media.unprotect"
        audit.record(actor, action, ids.mxc_uri(media_id), via=via, ip=ip)


def _existing_local(media_id: str) -> QuerySet[LocalMedia]:
    if not ids.MEDIA_ID_RE.match(media_id):
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    media = LocalMedia.objects.filter(media_id=media_id)
    if not media.exists():
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    return media


def protect_media(media_id: str, *, actor: str, via: str = "api", ip: str = "") -> None:
    """Keep a local item out of every quarantine (sticker packs, shared media)."""
    _set_protected(media_id, True, actor, via, ip)


def unprotect_media(media_id: str, *, actor: str, via: str = "api", ip: str = "") -> None:
    _set_protected(media_id, False, actor, via, ip)


def delete_media(
    server_name: str, media_id: str, *, actor: str, via: str = "api", ip: str = ""
) -> list[str]:
    """Delete a local item, its thumbnails and files; the IDs deleted. 400 for another
    server's media (Synapse only deletes local media this way)."""
    if not ids.is_local(server_name):
        raise invalid_param("Can only delete local media")
    with transaction.atomic():
        moderation.do_delete(_existing_local(media_id))
        audit.record(actor, "media.delete", ids.mxc_uri(media_id), via=via, ip=ip)
    return [media_id]


def delete_old_media(
    before_ts: int,
    *,
    size_gt: int = 0,
    keep_profiles: bool = True,
    actor: str,
    via: str = "api",
    ip: str = "",
) -> list[str]:
    """Delete local media uploaded before ``before_ts`` and larger than ``size_gt`` bytes;
    with ``keep_profiles``, not those a user's or a room's avatar points at. Protected and
    quarantined items are kept, as Synapse keeps them."""
    media = LocalMedia.objects.filter(
        Q(uploaded_ts__lt=before_ts) | Q(uploaded_ts__isnull=True, created_ts__lt=before_ts),
        size__gt=size_gt,
        safe_from_quarantine=False,
        quarantined_by__isnull=True,
    )
    if keep_profiles:
        in_use = moderation.media_ids_in_profiles()
        media = media.exclude(media_id__in=in_use)
    with transaction.atomic():
        deleted = list(media.values_list("media_id", flat=True))
        moderation.do_delete(LocalMedia.objects.filter(media_id__in=deleted))
        audit.record(
            actor,
            "media.delete_old",
            "",
            via=via,
            ip=ip,
            before_ts=before_ts,
            size_gt=size_gt,
            keep_profiles=keep_profiles,
            count=len(deleted),
        )
    return deleted
