"""Operator actions on media: quarantine (served to nobody), release, delete.

Each acts on a set of local media: chosen items, everything a user uploaded, or
everything referenced from a room's messages. Files are removed from the storage only
once the deletion of their rows has committed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.clock import now_ms
from accounts.models import User
from media import ids
from media.models import LocalMedia, RemoteMedia, Thumbnail
from media.storage import media_storage
from rooms.models import CurrentState, Event

logger = logging.getLogger(__name__)

# Event types whose content may point at media, and where (Client-Server API, "m.room.message
# msgtypes" and "Stickers"; encrypted attachments put the URI under "file").
MEDIA_EVENT_TYPES = ("m.room.message", "m.sticker")
_URI_PATHS = (
    ("url",),
    ("info", "thumbnail_url"),
    ("file", "url"),
    ("info", "thumbnail_file", "url"),
)


def _uris_in(content: Any) -> Iterator[str]:
    for source in (
        content,
        (content or {}).get("m.new_content") if isinstance(content, dict) else None,
    ):
        for path in _URI_PATHS:
            value: Any = source
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str):
                yield value


def mxc_in_room(room_id: str) -> set[tuple[str, str]]:
    """(server name, media ID) of every mxc URI the room's messages and stickers point
    at, this server's and others'."""
    found: set[tuple[str, str]] = set()
    pdus = Event.objects.filter(room__room_id=room_id, type__in=MEDIA_EVENT_TYPES).values_list(
        "pdu", flat=True
    )
    for pdu in pdus.iterator():
        for uri in _uris_in(pdu.get("content") if isinstance(pdu, dict) else None):
            parsed = ids.parse_mxc(uri)
            if parsed:
                found.add((parsed[0], parsed[1]))
    return found


def media_ids_in_room(room_id: str) -> set[str]:
    """IDs of this server's media referenced by the room's messages and stickers."""
    return {media_id for server, media_id in mxc_in_room(room_id) if ids.is_local(server)}


def remote_media_in_room(room_id: str) -> QuerySet[RemoteMedia]:
    """Other servers' media cached here that the room's messages point at."""
    condition = Q(pk__in=[])
    for server, media_id in mxc_in_room(room_id):
        if not ids.is_local(server):
            condition |= Q(origin=server, media_id=media_id)
    return RemoteMedia.objects.filter(condition)


def media_ids_in_profiles() -> set[str]:
    """IDs of this server's media used as a local user's avatar or a room's avatar (kept
    by the admin's deletion of old media unless told otherwise)."""
    uris: list[Any] = list(
        User.objects.filter(profile__has_key="avatar_url").values_list(
            "profile__avatar_url", flat=True
        )
    )
    avatar_events = CurrentState.objects.filter(type="m.room.avatar", state_key="").values(
        "event_id"
    )
    for pdu in Event.objects.filter(event_id__in=avatar_events).values_list("pdu", flat=True):
        content = pdu.get("content") if isinstance(pdu, dict) else None
        uris.append(content.get("url") if isinstance(content, dict) else None)
    found: set[str] = set()
    for uri in uris:
        parsed = ids.parse_mxc(uri)
        if parsed and ids.is_local(parsed[0]):
            found.add(parsed[1])
    return found


def media_of_user(user_id: str) -> QuerySet[LocalMedia]:
    return LocalMedia.objects.filter(user_id=user_id)


def media_in_room(room_id: str) -> QuerySet[LocalMedia]:
    return LocalMedia.objects.filter(media_id__in=media_ids_in_room(room_id))


def do_quarantine(media: QuerySet[LocalMedia] | QuerySet[RemoteMedia], by: str) -> int:
    """Stop serving these media (local, or other servers' cached here) to anyone; return
    how many were newly quarantined. Protected local media (``safe_from_quarantine``) is
    left alone."""
    if media.model is LocalMedia:
        media = media.filter(safe_from_quarantine=False)
    return media.filter(quarantined_by__isnull=True).update(quarantined_by=by or "admin")


def do_unquarantine(media: QuerySet[LocalMedia] | QuerySet[RemoteMedia]) -> int:
    return media.filter(quarantined_by__isnull=False).update(quarantined_by=None)


def delete_files(names: Iterable[str]) -> None:
    storage = media_storage()
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            try:
                storage.delete(name)
            except OSError:
                logger.warning("Could not delete media file %s", name, exc_info=True)


def do_delete(media: QuerySet[LocalMedia]) -> int:
    """Delete these media, their thumbnails and their files; return how many."""
    with transaction.atomic():
        pks = list(media.values_list("pk", flat=True))
        names = [
            n
            for n in LocalMedia.objects.filter(pk__in=pks).values_list("storage_name", flat=True)
            if n
        ]
        names += list(
            Thumbnail.objects.filter(media__pk__in=pks).values_list("storage_name", flat=True)
        )
        count, _ = LocalMedia.objects.filter(pk__in=pks).delete()
        transaction.on_commit(lambda: delete_files(names))
    return len(pks) if count else 0


def do_purge_unused_media_ids() -> int:
    """Delete media IDs reserved by /create whose time to upload has passed."""
    count, _ = LocalMedia.objects.filter(
        uploaded_ts__isnull=True, unused_expires_ts__lte=now_ms()
    ).delete()
    return count
