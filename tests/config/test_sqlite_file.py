"""The embedded SQLite database is created readable by its owner only, like the keys."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_database_and_its_wal_are_created_0600(
    tmp_path: Path, usual_umask: None, django_db_blocker: Any
) -> None:
    path = tmp_path / "trellis.sqlite3"
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "config.sqlite",
                "NAME": str(path),
                "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"},
            }
        }
    )
    connection = handler["default"]
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x INTEGER)")
            cursor.execute("INSERT INTO t VALUES (1)")
        wal = Path(f"{path}-wal")
        assert wal.exists()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path, wal)}
    finally:
        connection.close()
    assert modes == {"trellis.sqlite3": 0o600, "trellis.sqlite3-wal": 0o600}
