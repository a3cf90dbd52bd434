"""Other servers' stored verify keys, kept in process memory for a while.

Every PDU received is verified with its server's key: a send_join answer of a big room
checks thousands of events signed with the same one or two keys, and reading the key row
for each cost one query per event. A row read here is kept with its validity
(``valid_until_ts``, ``expired_ts``) for at most ``TTL_S`` seconds, so that whether the
key is usable at a given time is decided exactly as from the row itself, and a key
another process stores or retires is seen here within that time. Keys stored in this
process (federation.services.do_store_server_keys) are forgotten at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from config import process_caches
from federation.models import RemoteServerKey
from protocol.signing import VerifyKey, decode_verify_key_bytes

TTL_S = 60.0
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class StoredKey:
    """A RemoteServerKey row: the key and its validity (see the model's docstring)."""

    verify_key: VerifyKey
    valid_until_ts: int
    expired_ts: int | None
    read_at: float


_keys: dict[tuple[str, str], StoredKey] = {}
_lock = threading.Lock()


def stored_key(server_name: str, key_id: str) -> StoredKey | None:
    """The stored key ``key_id`` of ``server_name``, as read at most TTL_S seconds ago;
    None when it is not stored."""
    with _lock:
        cached = _keys.get((server_name, key_id))
    if cached is not None and time.monotonic() - cached.read_at < TTL_S:
        return cached
    return read_key(server_name, key_id)


def read_key(server_name: str, key_id: str) -> StoredKey | None:
    """The stored key read from the database now (and kept for the next readers)."""
    row = (
        RemoteServerKey.objects.filter(server_name=server_name, key_id=key_id)
        .values_list("verify_key", "valid_until_ts", "expired_ts")
        .first()
    )
    with _lock:
        if row is None:
            _keys.pop((server_name, key_id), None)
            return None
        if len(_keys) >= _CACHE_SIZE:
            _keys.clear()
        key = StoredKey(decode_verify_key_bytes(key_id, row[0]), row[1], row[2], time.monotonic())
        _keys[(server_name, key_id)] = key
    return key


def forget(server_name: str) -> None:
    """Forget what was read of ``server_name``'s keys (they were stored anew)."""
    with _lock:
        for cached in [key for key in _keys if key[0] == server_name]:
            del _keys[cached]


@process_caches.register
def forget_all() -> None:
    with _lock:
        _keys.clear()
