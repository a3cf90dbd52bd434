"""Matching events against a filter's EventFilter (Client-Server API, "Filtering").

In ``types`` / ``not_types`` a ``*`` matches any sequence of characters ("A '*' can be
used as a wildcard to match any sequence of characters"); ``senders`` / ``not_senders``
are exact user IDs. A key that is absent does not filter. Filters are checked when they
are stored or given inline, so values here are lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def wildcard_regex(pattern: str) -> str:
    """The regular expression of a type pattern, anchored at both ends. Only escaped
    characters and ``(.|\\n)*`` (any sequence, newlines included whatever the engine's
    default), so PostgreSQL's and Python's engines read it alike."""
    return "^" + "(.|\n)*".join(re.escape(part) for part in pattern.split("*")) + "$"


def _matches_any(patterns: Iterable[Any], value: str) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        if pattern == value:
            return True
        if "*" in pattern and re.match(wildcard_regex(pattern), value):
            return True
    return False


def type_allowed(event_filter: Mapping[str, Any], event_type: str) -> bool:
    """Does the filter's ``types`` / ``not_types`` let events of this type through?"""
    types = event_filter.get("types")
    if isinstance(types, list) and not _matches_any(types, event_type):
        return False
    not_types = event_filter.get("not_types")
    return not (isinstance(not_types, list) and _matches_any(not_types, event_type))


def event_allowed(event_filter: Mapping[str, Any], event_type: str, sender: str) -> bool:
    """Does an event pass the filter's types, not_types, senders and not_senders?"""
    if not type_allowed(event_filter, event_type):
        return False
    senders = event_filter.get("senders")
    if isinstance(senders, list) and sender not in senders:
        return False
    not_senders = event_filter.get("not_senders")
    return not (isinstance(not_senders, list) and sender in not_senders)
