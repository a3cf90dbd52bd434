"""Login sessions: devices, access tokens, refresh tokens, logout."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from accounts.clock import now_ms
from accounts.models import AccessToken, Device, User
from accounts.signals import device_renamed
from accounts.tokens import new_access_token, new_refresh_token, token_digest
from protocol.errors import MatrixError


@dataclass(frozen=True)
class NewSession:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None

    def as_login_response(self) -> dict[str, object]:
        response: dict[str, object] = {
            "user_id": self.user_id,
            "access_token": self.access_token,
            "device_id": self.device_id,
        }
        if self.refresh_token is not None:
            response["refresh_token"] = self.refresh_token
            response["expires_in_ms"] = self.expires_in_ms
        return response


MAX_DEVICE_ID_LENGTH = 255
MAX_DEVICE_DISPLAY_NAME_LENGTH = 512


def check_device_fields(device_id: str | None, display_name: str | None) -> None:
    """Refuse a device ID or display name longer than a device can hold."""
    if device_id is not None and not 0 < len(device_id) <= MAX_DEVICE_ID_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "'device_id' must be 1 to 255 characters")
    if display_name is not None and len(display_name) > MAX_DEVICE_DISPLAY_NAME_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "Device display name is too long")


def generate_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


def do_create_session(
    user: User,
    *,
    device_id: str | None = None,
    initial_display_name: str | None = None,
    refresh: bool = False,
    ip: str | None = None,
) -> NewSession:
    """Log ``user`` in on a new or existing device and return the new tokens.

    Client-Server API, POST /login: reusing a device ID keeps the device but
    invalidates every access token previously associated with it.
    """
    check_device_fields(device_id, initial_display_name)
    with transaction.atomic():
        if device_id is None:
            device_id = generate_device_id()
        device, created = Device.objects.get_or_create(
            user=user,
            device_id=device_id,
            defaults={"display_name": initial_display_name, "last_seen_ip": ip},
        )
        if not created:
            device.access_tokens.all().delete()
        if device.last_seen_ts is None:
            Device.objects.filter(pk=device.pk).update(last_seen_ts=now_ms(), last_seen_ip=ip)
        return _issue_tokens(user, device, refresh=refresh)


def _issue_tokens(
    user: User, device: Device, *, refresh: bool, previous_refresh_token: str | None = None
) -> NewSession:
    access_token = new_access_token()
    refresh_token = new_refresh_token() if refresh else None
    lifetime = settings.ACCESS_TOKEN_LIFETIME_MS if refresh else None
    AccessToken.objects.create(
        user=user,
        device=device,
        token_hash=token_digest(access_token),
        refresh_token_hash=token_digest(refresh_token) if refresh_token else None,
        previous_refresh_token_hash=(
            token_digest(previous_refresh_token) if previous_refresh_token else None
        ),
        expires_at_ms=now_ms() + lifetime if lifetime is not None else None,
    )
    return NewSession(user.user_id, device.device_id, access_token, refresh_token, lifetime)


def do_set_session_expiry(access_token: str, expires_at_ms: int) -> None:
    """Make a session's access token stop working at ``expires_at_ms`` (epoch ms)."""
    AccessToken.objects.filter(token_hash=token_digest(access_token)).update(
        expires_at_ms=expires_at_ms
    )


def do_refresh(refresh_token: str) -> NewSession:
    """POST /refresh: swap a refresh token for a new access and refresh token pair.

    The old access token stops working at once. The old refresh token "remains valid
    until the new access token or refresh token is used": until then, presenting it
    again replaces the pair it produced, so a client that lost the answer can retry.
    """
    digest = token_digest(refresh_token)
    with transaction.atomic():
        # Either the session holding this refresh token, or the not-yet-used session
        # that was refreshed from it; both are replaced the same way.
        session = (
            AccessToken.objects.select_for_update()
            .select_related("user", "device")
            .filter(Q(refresh_token_hash=digest) | Q(previous_refresh_token_hash=digest))
            .first()
        )
        if session is None or not session.user.is_active:
            raise MatrixError("M_UNKNOWN_TOKEN", "Unknown refresh token", soft_logout=False)
        user, device = session.user, session.device
        session.delete()
        return _issue_tokens(user, device, refresh=True, previous_refresh_token=refresh_token)


def do_mark_session_used(session: AccessToken) -> None:
    """The first use of a refreshed session revokes the refresh token it came from."""
    if session.previous_refresh_token_hash is not None:
        AccessToken.objects.filter(pk=session.pk).update(previous_refresh_token_hash=None)
        session.previous_refresh_token_hash = None


def do_logout(session: AccessToken) -> None:
    """POST /logout: end this session and delete its device."""
    do_delete_devices(session.user, [session.device.device_id])


def do_logout_all(user: User) -> None:
    """POST /logout/all: end every session of ``user`` and delete all its devices."""
    user.devices.all().delete()


def do_delete_devices(user: User, device_ids: Iterable[str]) -> None:
    """Delete devices and, with them, their access tokens. Unknown IDs are ignored."""
    Device.objects.filter(user=user, device_id__in=list(device_ids)).delete()


def do_logout_other_sessions(user: User, keep: AccessToken | None) -> None:
    """Delete every device of ``user`` except the one ``keep`` belongs to."""
    devices = Device.objects.filter(user=user)
    if keep is not None:
        devices = devices.exclude(pk=keep.device_id)
    devices.delete()


def do_rename_device(user: User, device_id: str, display_name: str) -> None:
    check_device_fields(None, display_name)
    with transaction.atomic():
        updated = Device.objects.filter(user=user, device_id=device_id).update(
            display_name=display_name
        )
        if not updated:
            raise MatrixError("M_NOT_FOUND", "Unknown device")
        device_renamed.send(sender=Device, user_id=user.user_id, device_id=device_id)


# A session whose access token expired stays this long, so that its refresh token can
# still be used; after that the client must log in again.
REFRESH_GRACE_MS = 7 * 24 * 3600 * 1000


def do_purge_expired_sessions() -> int:
    deleted, _ = AccessToken.objects.filter(expires_at_ms__lt=now_ms() - REFRESH_GRACE_MS).delete()
    return deleted
