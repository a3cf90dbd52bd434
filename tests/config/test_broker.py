"""The embedded broker (config/broker.py): a message appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

from config import broker


def _connection(folder: Path) -> Connection:
    return Connection(
        f"{broker.SCHEME}://",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "store_processed": False,
        },
    )


def test_the_embedded_default_uses_it() -> None:
    from django.conf import settings

    # Without REDIS_URL (CI's first pass) the filesystem broker; with it, Redis.
    wanted = settings.REDIS_URL or f"{broker.SCHEME}://"
    assert wanted == settings.CELERY_BROKER_URL


def test_a_message_goes_through(tmp_path: Path) -> None:
    with _connection(tmp_path) as connection:
        queue = connection.SimpleQueue("work")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        queue.close()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".msg")]


def test_a_reader_never_sees_a_message_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_while_writing: list[Any] = []
    real_fsync = os.fsync

    with _connection(tmp_path) as connection:
        channel = connection.default_channel

        def fsync_and_look(fd: int) -> None:
            # The bytes are written, not yet renamed into place: kombu's own transport
            # had the file under its final name (empty, at first) by now.
            real_fsync(fd)
            try:
                seen_while_writing.append(channel._get("work"))
            except Empty:
                seen_while_writing.append(None)

        monkeypatch.setattr(os, "fsync", fsync_and_look)
        channel._put("work", {"body": "whole"})
        monkeypatch.setattr(os, "fsync", real_fsync)

        assert seen_while_writing == [None]
        assert channel._get("work") == {"body": "whole"}
    assert os.listdir(tmp_path) == []
