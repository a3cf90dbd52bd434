"""SQLite backend for the embedded default: one writer at a time, queued in process.

SQLite allows one write transaction at a time. Left to SQLite, concurrent writers spin
in its busy handler, which sleeps up to 100 ms between retries, so under load a write
can wait seconds while the database is idle. Here every write transaction (BEGIN
IMMEDIATE, see settings) first takes a process-wide lock, so writers of this process
queue and run back to back; SQLite's busy timeout still arbitrates between processes
(the web server and the Celery worker).
"""

from __future__ import annotations

import threading
from typing import Any

from django.db.backends.sqlite3 import base

_write_lock = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_write_lock = False

    def _start_transaction_under_autocommit(self) -> None:
        _write_lock.acquire()
        self._holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            _write_lock.release()

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()
