"""Helpers shared by the rooms views."""

from __future__ import annotations

import base64
import secrets

from django.conf import settings
from rest_framework.request import Request

from protocol.errors import MatrixError
from protocol.identifiers import parse_room_alias
from protocol.identifiers import require_room_id as check_room_id
from rooms.models import RoomAlias
from rooms.services.events import SendContext
from rooms.services.remote_directory import query_remote_alias


def fake_event_id() -> str:
    """An event ID like a real one, for a shadow-banned user's send that goes nowhere."""
    return "$" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def send_context(request: Request, txn_id: str | None = None) -> SendContext:
    return SendContext(
        sender=request.user.user_id,
        device_id=request.auth.device.device_id,
        txn_id=txn_id,
        guest=request.user.is_guest,
    )


def resolve_room_id_or_alias(value: str) -> str:
    """A room ID as is, or the room a local alias points at (M_NOT_FOUND otherwise)."""
    if value.startswith("!"):
        return check_room_id(value)
    if value.startswith("#"):
        try:
            alias = parse_room_alias(value)
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "Invalid room alias") from None
        row = RoomAlias.objects.select_related("room").filter(alias=str(alias)).first()
        if row is None:
            where = "" if alias.domain == settings.SERVER_NAME else " on this server"
            raise MatrixError("M_NOT_FOUND", f"Room alias not found{where}")
        return row.room.room_id
    raise MatrixError("M_INVALID_PARAM", "Expected a room ID or a room alias")


def resolve_room_and_servers(value: str) -> tuple[str, list[str]]:
    """A room ID as is, or the room an alias points at, with servers in the room: a local
    alias from this server's directory, another server's asked of that server."""
    if value.startswith("#"):
        try:
            alias = parse_room_alias(value)
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "Invalid room alias") from None
        if alias.domain != settings.SERVER_NAME:
            return query_remote_alias(str(alias))
    return resolve_room_id_or_alias(value), []
