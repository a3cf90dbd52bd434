"""Operator actions on the cache of other servers' media: purging cached files."""

from __future__ import annotations

from django.db import transaction

from media.models import RemoteMedia
from media.services import remote_media
from operators.services import audit
from protocol.errors import MatrixError


def purge_remote_media(
    origin: str, media_id: str, *, actor: str, via: str = "api", ip: str = ""
) -> int:
    """Delete the cached files of another server's media item: it is fetched again when
    next asked for, unless it is quarantined, which stays refused. Returns how many
    items were purged (0 or 1)."""
    media = RemoteMedia.objects.filter(origin=origin, media_id=media_id)
    if not media.exists():
        raise MatrixError("M_NOT_FOUND", "Unknown media")
    with transaction.atomic():
        count = remote_media.do_purge_remote_media(media)
        audit.record(actor, "media.purge_remote", f"mxc://{origin}/{media_id}", via=via, ip=ip)
    return count
