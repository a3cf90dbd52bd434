"""Where media bytes live: the "media" entry of ``settings.STORAGES``.

Names in the storage are built from media IDs only (``A-Za-z0-9_-``, checked before any
lookup), never from anything else a client sends, so no request can name a path
outside the storage.
"""

from __future__ import annotations

from django.core.files.storage import Storage, storages


def media_storage() -> Storage:
    return storages["media"]


def _shard(media_id: str) -> str:
    return f"{media_id[0:2]}/{media_id[2:4]}/{media_id}"


def content_name(media_id: str) -> str:
    return f"local_content/{_shard(media_id)}"


def thumbnail_name(media_id: str, width: int, height: int, method: str, extension: str) -> str:
    return f"local_thumbnails/{_shard(media_id)}/{width}-{height}-{method}.{extension}"


def remote_content_name(file_id: str) -> str:
    return f"remote_content/{_shard(file_id)}"


def remote_thumbnail_name(
    file_id: str, width: int, height: int, method: str, extension: str
) -> str:
    return f"remote_thumbnails/{_shard(file_id)}/{width}-{height}-{method}.{extension}"
