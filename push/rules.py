"""Reads of push rules: a user's ruleset for the API, and compiled rules for evaluation.

``compiled_rules_for`` serves the send path, which evaluates every event for every local
member of its room. Compiled rulesets are kept per process: users who never changed
their rules share one compiled default ruleset, others have their own. Every change to
a user's rules takes a new position on the account_data stream (``PushRules.stream_id``),
and positions become visible in order (streams.positions), so one query for the rows
past the highest position seen finds every change made since, by any process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from config import process_caches
from protocol.push.evaluator import CompiledRules
from protocol.push.rules import predefined_rules, ruleset
from push.models import PushRules
from streams import positions as streams

# The predefined rules are compiled once for a stand-in owner: their conditions naming
# the owner then test whoever the rules are evaluated for.
_STAND_IN = "@ stand-in owner"
DEFAULT_RULES = CompiledRules(predefined_rules(_STAND_IN), owner=_STAND_IN)

_lock = threading.Lock()
# user ID -> (stream_id of the row compiled, 0 for no row; the compiled rules)
_compiled: dict[str, tuple[int, CompiledRules]] = {}
# The highest PushRules.stream_id this process has read; None before its first read.
_seen: int | None = None


@process_caches.register
def forget_compiled_rules() -> None:
    """For tests, whose rolled-back databases hand out stream positions again."""
    global _seen
    with _lock:
        _compiled.clear()
        _seen = None


def changes_of(user_id: str) -> dict[str, Any] | None:
    return PushRules.objects.filter(user_id=user_id).values_list("changes", flat=True).first()


def ruleset_for(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The user's ruleset as GET /pushrules/global/ returns it."""
    return ruleset(user_id, changes_of(user_id))


def compiled_rules_for(user_ids: Iterable[str]) -> dict[str, CompiledRules]:
    """Each user's compiled push rules: at most one query (the first call of a process
    makes two), for the rows changed since this process last looked and those of the
    users it has not compiled yet."""
    global _seen
    wanted = list(dict.fromkeys(user_ids))
    missing = [user_id for user_id in wanted if user_id not in _compiled]
    query: Q | None
    if _seen is None:
        # Everything up to the current position is committed; later changes have later
        # positions, which the next call's query finds.
        seen = streams.current_position(streams.ACCOUNT_DATA)
        query = Q(user_id__in=missing) if missing else None
    else:
        seen = _seen
        query = Q(stream_id__gt=seen)
        if missing:
            query |= Q(user_id__in=missing)
    rows = (
        list(PushRules.objects.filter(query).values_list("user_id", "changes", "stream_id"))
        if query is not None
        else []
    )
    fresh = {
        user_id: (stream_id, CompiledRules(ruleset(user_id, changes), owner=user_id))
        for user_id, changes, stream_id in rows
    }
    with _lock:
        for user_id, entry in fresh.items():
            # A concurrent call may have stored a newer version already.
            current = _compiled.get(user_id)
            if current is None or current[0] < entry[0]:
                _compiled[user_id] = entry
        for user_id in missing:
            if user_id not in fresh:
                _compiled.setdefault(user_id, (0, DEFAULT_RULES))
        top = max((entry[0] for entry in fresh.values()), default=seen)
        _seen = max(top, seen, _seen or 0)
        return {user_id: _compiled[user_id][1] for user_id in wanted}
