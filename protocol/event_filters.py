"""Matching events against a filter's EventFilter (Client-Server API, "Filtering").

``types`` / ``not_types`` entries may end in ``*`` to match any type with that prefix;
``senders`` / ``not_senders`` are exact user IDs. A key that is absent does not filter.
Filters are checked when they are stored or given inline, so values here are lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _matches_any(patterns: Iterable[Any], value: str) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        if pattern == value or (pattern.endswith("*") and value.startswith(pattern[:-1])):
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
