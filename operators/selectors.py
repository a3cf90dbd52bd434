"""Reads for operators: users as Synapse's admin API describes them, listed and paged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Q, QuerySet

from accounts.models import Device, User
from accounts.selectors_threepids import threepids_of
from media.models import LocalMedia

# Synapse's order_by values for the user list, and the column each sorts on.
USER_ORDER = {
    "name": "localpart",
    "displayname": "profile__displayname",
    "is_guest": "is_guest",
    "admin": "is_staff",
    "deactivated": "is_active",
    "user_type": "user_type",
    "avatar_url": "profile__avatar_url",
    "shadow_banned": "is_shadow_banned",
    "creation_ts": "created_at",
    "last_seen_ts": "last_seen_ts",
    "locked": "is_locked",
}

MEDIA_ORDER = {
    "media_id": "media_id",
    "upload_name": "upload_name",
    "created_ts": "created_ts",
    "last_access_ts": "created_ts",
    "media_length": "size",
    "media_type": "content_type",
    "quarantined_by": "quarantined_by",
    "safe_from_quarantine": "media_id",
}


@dataclass
class UserQuery:
    """The filters of GET /_synapse/admin/v2|v3/users. ``deactivated`` None: both."""

    start: int = 0
    limit: int = 100
    guests: bool = True
    deactivated: bool | None = False
    admins: bool | None = None
    name: str | None = None
    user_id: str | None = None
    order_by: str = "name"
    direction: str = "f"
    not_user_types: tuple[str, ...] = ()


def _ms(when: Any) -> int:
    return int(when.timestamp() * 1000)


def users_page(query: UserQuery) -> tuple[list[dict[str, Any]], int]:
    """One page of users as list entries, and how many match in all."""
    users: QuerySet[User] = User.objects.annotate(last_seen_ts=Max("devices__last_seen_ts"))
    if not query.guests:
        users = users.filter(is_guest=False)
    if query.deactivated is not None:
        users = users.filter(is_active=not query.deactivated)
    if query.admins is not None:
        users = users.filter(is_staff=query.admins)
    if query.user_id:
        users = users.filter(localpart__icontains=query.user_id.lstrip("@").split(":")[0])
    if query.name:
        users = users.filter(
            Q(localpart__icontains=query.name.lstrip("@").split(":")[0])
            | Q(profile__displayname__icontains=query.name)
        )
    for user_type in query.not_user_types:
        users = users.exclude(user_type=None if user_type == "" else user_type)
    column = USER_ORDER[query.order_by]
    descending = query.direction == "b"
    order = f"-{column}" if descending else column
    if query.order_by == "deactivated":
        # deactivated is "not is_active": the opposite direction of the column.
        order = column if descending else f"-{column}"
    total = users.count()
    rows = users.order_by(order, "localpart")[query.start : query.start + query.limit]
    return [user_list_entry(user) for user in rows], total


def user_list_entry(user: User) -> dict[str, Any]:
    """A user as GET /_synapse/admin/v2/users lists it (creation_ts in milliseconds)."""
    return {
        "name": user.user_id,
        "user_type": user.user_type,
        "is_guest": user.is_guest,
        "admin": user.is_staff,
        "deactivated": not user.is_active,
        "shadow_banned": user.is_shadow_banned,
        "displayname": user.displayname,
        "avatar_url": user.avatar_url,
        "creation_ts": _ms(user.created_at),
        "erased": user.is_erased,
        "last_seen_ts": getattr(user, "last_seen_ts", None),
        "locked": user.is_locked,
    }


def user_details(user: User) -> dict[str, Any]:
    """A user as GET /_synapse/admin/v2/users/{userId} answers (creation_ts in seconds,
    as Synapse has it there)."""
    last_seen = Device.objects.filter(user=user).aggregate(ts=Max("last_seen_ts"))["ts"]
    return {
        "name": user.user_id,
        "admin": user.is_staff,
        "deactivated": not user.is_active,
        "locked": user.is_locked,
        "shadow_banned": user.is_shadow_banned,
        "creation_ts": _ms(user.created_at) // 1000,
        "appservice_id": None,
        "consent_server_notice_sent": None,
        "consent_version": None,
        "consent_ts": None,
        "user_type": user.user_type,
        "is_guest": user.is_guest,
        "suspended": user.is_suspended,
        "displayname": user.displayname,
        "avatar_url": user.avatar_url,
        "threepids": [
            {
                "medium": threepid.medium,
                "address": threepid.address,
                "added_at": threepid.added_at_ms,
                "validated_at": threepid.validated_at_ms,
            }
            for threepid in threepids_of(user)
        ],
        "external_ids": [],
        "erased": user.is_erased,
        "last_seen_ts": last_seen,
    }


def device_entry(user: User, device: Device) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_user_agent": None,
        "last_seen_ts": device.last_seen_ts,
        "last_seen_ip": device.last_seen_ip,
    }


def whois(user: User) -> dict[str, Any]:
    """Client-Server API, GET /admin/whois/{userId}: per device, its sessions'
    connections (the last one each device was seen on)."""
    devices: dict[str, Any] = {}
    for device in user.devices.order_by("device_id"):
        connections = []
        if device.last_seen_ts is not None:
            connections.append(
                {
                    "ip": device.last_seen_ip or "",
                    "last_seen": device.last_seen_ts,
                    "user_agent": "",
                }
            )
        devices[device.device_id] = {"sessions": [{"connections": connections}]}
    return {"user_id": user.user_id, "devices": devices}


def user_media(
    user: User, start: int, limit: int, order_by: str, direction: str
) -> QuerySet[LocalMedia]:
    media = LocalMedia.objects.filter(user_id=user.user_id)
    column = MEDIA_ORDER[order_by]
    ordered = media.order_by(f"-{column}" if direction == "b" else column, "media_id")
    return ordered[start : start + limit]


def media_entry(media: LocalMedia) -> dict[str, Any]:
    return {
        "media_id": media.media_id,
        "media_type": media.content_type,
        "media_length": media.size,
        "upload_name": media.upload_name,
        "created_ts": media.created_ts,
        "url_cache": None,
        "last_access_ts": None,
        "quarantined_by": media.quarantined_by,
        "safe_from_quarantine": False,
        "user_id": media.user_id,
        "authenticated": int(media.authenticated_only),
        "sha256": media.sha256,
    }
