"""Background work of the media repository."""

from __future__ import annotations

from celery import shared_task

from media.models import LocalMedia
from media.services import moderation, previews, remote_media, thumbnails


@shared_task
def pregenerate_thumbnails(media_pk: int) -> int:
    """Make the spec's recommended thumbnails of a new upload."""
    media = LocalMedia.objects.filter(pk=media_pk, uploaded_ts__isnull=False).first()
    if media is None or media.is_quarantined:
        return 0
    return thumbnails.do_pregenerate_thumbnails(media)


@shared_task
def purge_expired_media_state() -> dict[str, int]:
    """Forget media IDs from POST /media/v1/create that expired without an upload, URL
    previews past their cache lifetime, and failed or abandoned fetches of other
    servers' media."""
    return {
        "unused_media_ids": moderation.do_purge_unused_media_ids(),
        "url_previews": previews.do_purge_expired_previews(),
        "failed_remote_fetches": remote_media.do_forget_failed_fetches(),
    }
