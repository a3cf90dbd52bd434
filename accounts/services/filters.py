"""Filters (Client-Server API, "Filtering"): stored per user, referenced by ID in /sync."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Filter, User
from protocol.errors import MatrixError
from protocol.identifiers import is_valid_room_id, is_valid_user_id

_EVENT_FILTER_LISTS = ("types", "not_types", "senders", "not_senders")
_ROOM_EVENT_FILTER_LISTS = (*_EVENT_FILTER_LISTS, "rooms", "not_rooms")
_ROOM_EVENT_FILTER_BOOLS = (
    "lazy_load_members",
    "include_redundant_members",
    "unread_thread_notifications",
    "contains_url",
)


def _no_nulls(obj: dict[str, Any], where: str) -> None:
    """Every filter field is an object, array, string, integer or boolean: never null."""
    for key, value in obj.items():
        if value is None:
            raise MatrixError("M_BAD_JSON", f"'{where}.{key}' must not be null")


def _check_list_of_strings(obj: dict[str, Any], key: str, where: str) -> None:
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError("M_BAD_JSON", f"'{where}.{key}' must be a list of strings")


def _check_ids(obj: dict[str, Any], where: str) -> None:
    """``senders``/``not_senders`` are user IDs, ``rooms``/``not_rooms`` room IDs (the
    spec's ``mx-user-id`` and ``mx-room-id`` formats); a list of strings already."""
    for key, valid, kind in (
        ("senders", is_valid_user_id, "user"),
        ("not_senders", is_valid_user_id, "user"),
        ("rooms", is_valid_room_id, "room"),
        ("not_rooms", is_valid_room_id, "room"),
    ):
        for value in obj.get(key) or ():
            if not valid(value):
                raise MatrixError("M_BAD_JSON", f"'{where}.{key}': {value!r} is not a {kind} ID")


def _check_event_filter(obj: Any, where: str, *, room_event: bool) -> None:
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise MatrixError("M_BAD_JSON", f"'{where}' must be an object")
    _no_nulls(obj, where)
    for key in _ROOM_EVENT_FILTER_LISTS if room_event else _EVENT_FILTER_LISTS:
        _check_list_of_strings(obj, key, where)
    _check_ids(obj, where)
    limit = obj.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise MatrixError("M_BAD_JSON", f"'{where}.limit' must be a non-negative integer")
    if room_event:
        for key in _ROOM_EVENT_FILTER_BOOLS:
            if key in obj and not isinstance(obj[key], bool):
                raise MatrixError("M_BAD_JSON", f"'{where}.{key}' must be a boolean")


def check_room_event_filter(obj: Any, where: str = "filter") -> None:
    """Validate a RoomEventFilter given on its own (e.g. /messages' ``filter`` query)."""
    _check_event_filter(obj, where, room_event=True)


def check_filter(definition: dict[str, Any]) -> None:
    """Validate the shape of a filter definition (Client-Server API, POST /filter)."""
    _no_nulls(definition, "filter")
    for key in ("event_fields",):
        _check_list_of_strings(definition, key, "filter")
    event_format = definition.get("event_format")
    if event_format is not None and event_format not in ("client", "federation"):
        raise MatrixError("M_BAD_JSON", "'event_format' must be 'client' or 'federation'")
    for key in ("presence", "account_data"):
        _check_event_filter(definition.get(key), key, room_event=False)
    room = definition.get("room")
    if room is None:
        return
    if not isinstance(room, dict):
        raise MatrixError("M_BAD_JSON", "'room' must be an object")
    _no_nulls(room, "room")
    _check_list_of_strings(room, "rooms", "room")
    _check_list_of_strings(room, "not_rooms", "room")
    _check_ids(room, "room")
    if "include_leave" in room and not isinstance(room["include_leave"], bool):
        raise MatrixError("M_BAD_JSON", "'room.include_leave' must be a boolean")
    for key in ("timeline", "state", "ephemeral", "account_data"):
        _check_event_filter(room.get(key), f"room.{key}", room_event=True)


def do_create_filter(user: User, definition: dict[str, Any]) -> int:
    check_filter(definition)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                current = Filter.objects.filter(user=user).aggregate(m=Max("filter_id"))["m"]
                filter_id = 0 if current is None else current + 1
                Filter.objects.create(user=user, filter_id=filter_id, definition=definition)
                return filter_id
        except IntegrityError:
            continue
    raise MatrixError("M_UNKNOWN", "Could not allocate a filter ID", status=500)
