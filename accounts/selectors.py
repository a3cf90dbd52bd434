"""Reads of account data, with the token and visibility checks applied here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db.models import Q

from accounts import session_cache
from accounts.clock import now_ms
from accounts.models import AccessToken, AccountData, Device, Filter, User
from accounts.tokens import token_digest
from config import process_caches
from config.lru import LRU
from protocol.errors import MatrixError, not_found
from protocol.identifiers import parse_user_id

# Device.last_seen_* is refreshed at most this often per session, to keep
# authenticated requests to one read in the common case.
_LAST_SEEN_RESOLUTION_MS = 60_000


def session_for_token(token: str, *, ip: str | None = None) -> AccessToken:
    """The live session for an access token, or M_UNKNOWN_TOKEN."""
    digest = token_digest(token)
    session = session_cache.sessions.get(digest)
    if session is None:
        session = (
            AccessToken.objects.select_related("user", "device").filter(token_hash=digest).first()
        )
        # A refreshed session's first use changes it (sessions.do_mark_session_used).
        if session is not None and session.previous_refresh_token_hash is None:
            session_cache.sessions.put(digest, session)
    if session is None or not session.user.is_active:
        raise MatrixError("M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
    now = now_ms()
    if session.expires_at_ms is not None and session.expires_at_ms <= now:
        raise MatrixError("M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True)
    device = session.device
    if device.last_seen_ts is None or now - device.last_seen_ts > _LAST_SEEN_RESOLUTION_MS:
        Device.objects.filter(pk=device.pk).update(last_seen_ts=now, last_seen_ip=ip)
        device.last_seen_ts, device.last_seen_ip = now, ip
        session_cache.sessions.put(digest, session)
    return session


def check_not_locked(user: User) -> None:
    """Client-Server API, "Account locking": a locked account gets 401 M_USER_LOCKED,
    soft_logout true, everywhere but /logout and /logout/all."""
    if user.is_locked:
        raise MatrixError(
            "M_USER_LOCKED", "This account has been locked", status=401, soft_logout=True
        )


def check_not_suspended(user: User) -> None:
    """Client-Server API, "Account suspension": what a suspended account may not do
    (join, knock, invite, send, change its profile) answers 403 M_USER_SUSPENDED."""
    if user.is_suspended:
        raise MatrixError(
            "M_USER_SUSPENDED", "You cannot perform this action while suspended.", status=403
        )


def local_user(user_id: str) -> User | None:
    """The active or deactivated local user with this Matrix ID, if any."""
    try:
        ident = parse_user_id(user_id)
    except ValueError:
        return None
    if ident.domain != settings.SERVER_NAME:
        return None
    return User.objects.filter(localpart=ident.localpart).first()


def is_localpart_taken(localpart: str) -> bool:
    return User.objects.filter(localpart=localpart).exists()


def get_profile(user_id: str) -> dict[str, Any]:
    """A local user's profile, or M_NOT_FOUND."""
    user = local_user(user_id)
    if user is None:
        raise not_found("Profile not found")
    return dict(user.profile)


# Asks another server for one of its users' profiles (all of it, or one field): the
# federation app registers it from its AppConfig.ready(), as accounts sits below it.
RemoteProfileLookup = Callable[[str, str | None], dict[str, Any]]
_remote_profile_lookup: RemoteProfileLookup | None = None


def register_remote_profile_lookup(lookup: RemoteProfileLookup) -> None:
    global _remote_profile_lookup
    _remote_profile_lookup = lookup


def get_any_profile(user_id: str, field: str | None = None) -> dict[str, Any]:
    """GET /profile/{userId}[/{keyName}]: a local user's profile, or a remote user's as
    their server answers it (with ``field``, only that field is asked for)."""
    try:
        domain = parse_user_id(user_id).domain
    except ValueError:
        raise not_found("Profile not found") from None
    if domain == settings.SERVER_NAME or _remote_profile_lookup is None:
        return get_profile(user_id)
    return _remote_profile_lookup(user_id, field)


def list_devices(user: User) -> list[Device]:
    return list(user.devices.order_by("device_id"))


def get_device(user: User, device_id: str) -> Device:
    device = user.devices.filter(device_id=device_id).first()
    if device is None:
        raise not_found("Unknown device")
    return device


# Global account data the server manages and every user has before it is first written
# (m.push_rules: the server-default push rules), each registered by the app that manages
# it from its AppConfig.ready() as a function of the user ID.
_server_defaults: dict[str, Callable[[str], dict[str, Any]]] = {}


def register_account_data_default(
    data_type: str, default: Callable[[str], dict[str, Any]]
) -> None:
    _server_defaults[data_type] = default


def account_data_defaults(user_id: str, present: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The server-managed global account data of ``user_id`` whose type is not in
    ``present`` (never written: the default content)."""
    return [
        (data_type, default(user_id))
        for data_type, default in _server_defaults.items()
        if data_type not in present
    ]


def all_account_data(
    user: User, room_ids: Iterable[str] | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, list[tuple[str, dict[str, Any]]]]]:
    """The account data the user wrote: global, and per room by room ID (of every room
    or of ``room_ids``). One query. Server-managed defaults never written (the default
    push rules) are not in it: GET /initialSync gives "the global private data created
    by this user"."""
    query = AccountData.objects.filter(user=user)
    if room_ids is not None:
        query = query.filter(Q(room_id="") | Q(room_id__in=list(room_ids)))
    global_data: list[tuple[str, dict[str, Any]]] = []
    per_room: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for room_id, data_type, content in query.order_by("stream_id").values_list(
        "room_id", "type", "content"
    ):
        if room_id:
            per_room.setdefault(room_id, []).append((data_type, content))
        else:
            global_data.append((data_type, content))
    return global_data, per_room


def get_account_data(user: User, data_type: str, room_id: str = "") -> dict[str, Any]:
    row = AccountData.objects.filter(user=user, room_id=room_id, type=data_type).first()
    if row is None:
        # Account data module, "Server Behaviour": "Servers must allow clients to read
        # the above event types as normal", written or not.
        default = None if room_id else _server_defaults.get(data_type)
        if default is None:
            raise not_found("Account data not found")
        return default(user.user_id)
    return dict(row.content)


# Filters never change once created (a changed filter is a new ID), so the ones in use
# are kept, as JSON text: every caller gets its own copy.
_filters: LRU[tuple[int, int], str] = LRU(4096)


@process_caches.register
def forget_cached_filters() -> None:
    """For tests, whose rolled-back databases hand out user and filter IDs again."""
    _filters.clear()


def get_filter(user: User, filter_id: str) -> dict[str, Any]:
    if not filter_id.isdigit():
        raise not_found("No such filter")
    key = (user.pk, int(filter_id))
    cached = _filters.get(key)
    if cached is None:
        row = Filter.objects.filter(user=user, filter_id=key[1]).first()
        if row is None:
            raise not_found("No such filter")
        cached = json.dumps(row.definition)
        _filters.put(key, cached)
    definition: dict[str, Any] = json.loads(cached)
    return definition


def erased_user_ids(user_ids: Iterable[str]) -> set[str]:
    """The local users among ``user_ids`` whose accounts were deactivated with erasure
    (Client-Server API, "Account deactivation"), in one query. Only this server's users
    can be known erased: others are left out without a query."""
    suffix = f":{settings.SERVER_NAME}"
    localparts = {
        user_id[1 : -len(suffix)]
        for user_id in user_ids
        if user_id.startswith("@") and user_id.endswith(suffix)
    }
    if not localparts:
        return set()
    rows = User.objects.filter(localpart__in=localparts, is_erased=True)
    return {f"@{localpart}{suffix}" for localpart in rows.values_list("localpart", flat=True)}
