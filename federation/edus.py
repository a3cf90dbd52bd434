"""EDUs other servers send us in transactions, handed to the app that knows their type.

Server-Server API, "EDUs": ephemeral data (typing notifications, receipts, presence,
device list updates, to-device messages) carried in a transaction's ``edus`` array as
``{"edu_type": ..., "content": ...}``. Each app registers a handler for the types it
owns, from its AppConfig.ready() (rooms: ``m.typing`` and ``m.receipt``; apps above
rooms register theirs the same way, as federation sits below them all).

A handler is called as ``handler(origin, content)``, ``origin`` being the server that
sent (and signed) the transaction. It runs in the database transaction that stores the
transaction's answer (rooms.federation.transactions), so what it writes is committed
exactly when the transaction counts as taken in: a retried transaction is answered from
the store and its EDUs are not applied again. So a handler must be cheap and stay in the
database; work that needs the network (fetching a remote device list, say) is handed to
a task on commit. It checks what it was given and ignores what it cannot use (the spec
has no error for an EDU): a malformed EDU, an unknown type, or a handler that fails is
logged and skipped, and never fails the transaction or the other EDUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

EduHandler = Callable[[str, Mapping[str, Any]], None]

_handlers: dict[str, EduHandler] = {}


def register_edu_handler(edu_type: str, handler: EduHandler) -> None:
    """Let ``handler`` take every inbound EDU of ``edu_type`` (one handler per type)."""
    existing = _handlers.get(edu_type)
    if existing is not None and existing is not handler:
        raise ValueError(f"{edu_type} EDUs are handled by {existing!r} already")
    _handlers[edu_type] = handler


def handler_for(edu_type: str) -> EduHandler | None:
    return _handlers.get(edu_type)


def receive_edus(origin: str, edus: Iterable[Any]) -> int:
    """Hand each EDU from ``origin`` to its type's handler, in order; how many were
    handled (without failing)."""
    handled = 0
    for edu in edus:
        if not isinstance(edu, dict):
            logger.info("dropped an EDU from %s that is not an object", origin)
            continue
        edu_type, content = edu.get("edu_type"), edu.get("content")
        if not isinstance(edu_type, str) or not isinstance(content, dict):
            logger.info("dropped a malformed EDU from %s", origin)
            continue
        handler = _handlers.get(edu_type)
        if handler is None:
            logger.debug("no handler for %s EDUs (from %s)", edu_type, origin)
            continue
        try:
            # A savepoint: a handler that fails leaves nothing behind, and the others go on.
            with transaction.atomic():
                handler(origin, content)
        except Exception:
            logger.warning("%s EDU from %s failed", edu_type, origin, exc_info=True)
            continue
        handled += 1
    return handled
