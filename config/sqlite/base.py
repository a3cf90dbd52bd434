"""SQLite backend for the embedded default: one writer at a time, queued in process.

SQLite allows one write transaction at a time. Left to SQLite, concurrent writers spin
in its busy handler, which sleeps up to 100 ms between retries, so under load a write
can wait seconds while the database is idle. Here every write transaction (BEGIN
IMMEDIATE, see settings) first takes a process-wide lock, so writers of this process
queue and run back to back; SQLite's busy timeout still arbitrates between processes
(the web server and the Celery worker).

The test suite's database is SQLite's shared-cache in-memory one, where a statement that
meets another connection's table lock fails at once ("database table is locked") instead
of waiting on the busy timeout as it does on a database file. Its cursors wait and retry
instead, up to the same timeout, so that threaded tests meet the locking a file gives.

Closed connections are kept for reuse, a few per database file. Under ASGI every
request runs in a thread of its own, so Django opens and closes a connection per
request; opening one (connect, Django's SQL functions, the PRAGMAs) cost more than the
queries of a simple request. A connection goes back idle only outside a transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from django.db.backends.sqlite3 import base

_write_lock = threading.Lock()

# Idle connections by database file, for reuse.
MAX_IDLE_PER_DATABASE = 8
_idle_lock = threading.Lock()
_idle: dict[str, list[sqlite3.Connection]] = {}


def create_private(path: str) -> None:
    """Create the database file, if missing, readable by its owner only (0600, like the
    signing key): it holds password hashes and every message. Left to SQLite it would get
    0644 under the usual umask; its -wal and -shm files take the database file's mode.
    An empty file is an empty SQLite database."""
    if path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        # It exists already, or cannot be created: then SQLite says what is wrong.
        return
    os.close(fd)


# How long a statement on the shared-cache in-memory database waits for another
# connection's table lock: the busy timeout a database file has (settings: 30 s).
SHARED_CACHE_WAIT_S = 30.0


class _SharedCacheCursor(base.SQLiteCursorWrapper):
    """A cursor that waits out another connection's table lock (see the module doc)."""

    def execute(self, query: str, params: Any = None) -> Any:
        return _waiting(lambda: super(_SharedCacheCursor, self).execute(query, params))

    def executemany(self, query: str, param_list: Any) -> Any:
        rows = list(param_list)
        return _waiting(lambda: super(_SharedCacheCursor, self).executemany(query, rows))


def _waiting(run: Any) -> Any:
    deadline = time.monotonic() + SHARED_CACHE_WAIT_S
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if "table is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_write_lock = False

    def create_cursor(self, name: Any = None) -> Any:
        if self.is_in_memory_db():
            return self.connection.cursor(factory=_SharedCacheCursor)
        return super().create_cursor(name)

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

    def _pool_key(self) -> str | None:
        if self.is_in_memory_db():
            return None
        return str(self.settings_dict["NAME"])

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        key = self._pool_key()
        if key is not None:
            with _idle_lock:
                idle = _idle.get(key)
                if idle:
                    return idle.pop()
            create_private(key)
        connection: sqlite3.Connection = super().get_new_connection(conn_params)
        return connection

    def _close(self) -> None:
        try:
            if not self._keep_idle():
                super()._close()
        finally:
            self._release_write_lock()

    def _keep_idle(self) -> bool:
        """Put the connection back for reuse instead of closing it, if it is clean."""
        connection = self.connection
        key = self._pool_key()
        if connection is None or key is None or connection.in_transaction:
            return False
        with _idle_lock:
            idle = _idle.setdefault(key, [])
            if len(idle) >= MAX_IDLE_PER_DATABASE:
                return False
            idle.append(connection)
        return True
