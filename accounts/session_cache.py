"""Recently used sessions, kept in the process for a moment.

Every authenticated request looks up its access token with its user and device; a
client that syncs in a loop asks the same thing many times a second. A session read
from the database is kept for ``settings.SESSION_CACHE_S`` (1 s by default, 0 turns it
off) as the rows' field values; each request gets its own model instances built from
them, never a shared one.

A change to a user, device or access token in this process (logout, deactivation,
device deletion, password change, profile edit) drops that user's sessions at once,
through the models' save and delete signals. Another web process learns of it when its
copy expires, so a session ended elsewhere may still be honoured for at most that
moment. The token's own expiry is checked on every request, cached or not.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from django.conf import settings
from django.db import router
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from accounts.models import AccessToken, Device, User
from config import process_caches

MAX_SESSIONS = 10_000

Row = tuple[tuple[str, ...], tuple[Any, ...]]


def _row(instance: Model) -> Row:
    names = tuple(field.attname for field in instance._meta.concrete_fields)
    return names, tuple(getattr(instance, name) for name in names)


def _instance(model: type[Model], row: Row) -> Any:
    names, values = row
    # Values such as a profile dict are copied: no request shares a mutable one.
    fresh = [copy.deepcopy(v) if isinstance(v, dict | list) else v for v in values]
    return model.from_db(router.db_for_read(model), names, fresh)


class _SessionCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # token digest -> (monotonic time read, user pk, token row, user row, device row)
        self.entries: dict[str, tuple[float, int, Row, Row, Row]] = {}
        self.by_user: dict[int, set[str]] = {}

    def get(self, digest: str) -> AccessToken | None:
        ttl = settings.SESSION_CACHE_S
        if ttl <= 0:
            return None
        with self.lock:
            entry = self.entries.get(digest)
        if entry is None or time.monotonic() - entry[0] > ttl:
            return None
        _, _, token_row, user_row, device_row = entry
        session: AccessToken = _instance(AccessToken, token_row)
        session.user = _instance(User, user_row)
        session.device = _instance(Device, device_row)
        return session

    def put(self, digest: str, session: AccessToken) -> None:
        if settings.SESSION_CACHE_S <= 0:
            return
        entry = (
            time.monotonic(),
            session.user_id,
            _row(session),
            _row(session.user),
            _row(session.device),
        )
        with self.lock:
            if len(self.entries) >= MAX_SESSIONS:
                self._clear()
            self.entries[digest] = entry
            self.by_user.setdefault(session.user_id, set()).add(digest)

    def forget_user(self, user_pk: int | None) -> None:
        with self.lock:
            for digest in self.by_user.pop(user_pk, set()) if user_pk is not None else ():
                self.entries.pop(digest, None)

    def clear(self) -> None:
        with self.lock:
            self._clear()

    def _clear(self) -> None:
        self.entries.clear()
        self.by_user.clear()


sessions = _SessionCache()
process_caches.register(sessions.clear)


def _user_changed(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    sessions.forget_user(instance.pk if isinstance(instance, User) else instance.user_id)  # type: ignore[attr-defined]


for _model in (User, Device, AccessToken):
    post_save.connect(
        _user_changed, sender=_model, dispatch_uid=f"session-cache-{_model.__name__}"
    )
    post_delete.connect(
        _user_changed, sender=_model, dispatch_uid=f"session-cache-del-{_model.__name__}"
    )
