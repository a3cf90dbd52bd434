"""Account registration: usernames, creating users, the admin shared-secret API."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.selectors import is_localpart_taken, session_for_token
from accounts.services import passwords
from protocol.errors import MatrixError
from protocol.identifiers import MAX_ID_BYTES, is_valid_user_localpart

# Where request_to_remember keeps the password, hashed.
PASSWORD_HASH = "password_hash"
# Where request_to_remember keeps the user ID of the guest account a registration
# upgrades (never the guest's access token).
GUEST_USER_ID = "guest_user_id"


def normalise_username(username: str) -> str:
    """Lower-case and validate a requested localpart (Client-Server API, "/register")."""
    localpart = username.lower()
    if localpart.startswith("@") and localpart.endswith(":" + settings.SERVER_NAME.lower()):
        localpart = localpart[1 : -len(settings.SERVER_NAME) - 1]
    if not localpart or not is_valid_user_localpart(localpart):
        raise MatrixError(
            "M_INVALID_USERNAME",
            "User ID may contain only the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
        )
    if len(f"@{localpart}:{settings.SERVER_NAME}".encode()) > MAX_ID_BYTES:
        raise MatrixError("M_INVALID_USERNAME", "User ID is longer than 255 bytes")
    return localpart


def check_username_available(username: str) -> str:
    """Return the normalised localpart, or raise M_INVALID_USERNAME / M_USER_IN_USE."""
    localpart = normalise_username(username)
    if is_localpart_taken(localpart):
        raise MatrixError("M_USER_IN_USE", "User ID already taken")
    return localpart


def _generated_localpart() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "u" + "".join(secrets.choice(alphabet) for _ in range(11))


def request_to_remember(params: dict[str, Any], guest: User | None = None) -> dict[str, Any]:
    """The parameters of a POST /register to keep with its UIA session: the password
    only as its hash, so that no plain password is ever stored, and an upgraded guest
    by its user ID rather than its access token."""
    secret = ("password", "guest_access_token")
    kept = {key: value for key, value in params.items() if key not in secret}
    password = params.get("password")
    if isinstance(password, str):
        kept[PASSWORD_HASH] = make_password(password)
    if guest is not None:
        kept[GUEST_USER_ID] = guest.user_id
    return kept


def do_create_user(
    localpart: str | None,
    password: str | None,
    *,
    admin: bool = False,
    password_hash: str | None = None,
    guest: bool = False,
) -> User:
    """Create a local user; ``localpart`` None picks a free random one. ``password_hash``
    (from :func:`request_to_remember`) stands in for a password already checked.
    ``guest``: a guest account (Client-Server API, "Guest access"); its display name
    is its localpart too, as Synapse gives its guests."""
    if password is not None:
        passwords.check_new_password(password)
    if localpart is None:
        localpart = _generated_localpart()
        while is_localpart_taken(localpart):
            localpart = _generated_localpart()
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                localpart,
                password,
                is_staff=admin,
                is_superuser=admin,
                is_guest=guest,
                profile={"displayname": localpart},
            )
            if password is None and password_hash is not None:
                user.password = password_hash
                user.save(update_fields=["password"])
            return user
    except IntegrityError:
        raise MatrixError("M_USER_IN_USE", "User ID already taken") from None


def access_upgradable_guest(username: str, guest_access_token: str) -> User:
    """The guest account a POST /register with ``guest_access_token`` upgrades.

    Client-Server API, "Guest access": a guest upgrades by registering with its access
    token and its own localpart as ``username``. Any other pairing (another user's
    localpart, a token that is not a live guest's) is 403 M_FORBIDDEN, as Synapse
    answers; the username is checked for validity first (M_INVALID_USERNAME).
    """
    localpart = normalise_username(username)
    try:
        session = session_for_token(guest_access_token)
    except MatrixError:
        session = None
    if session is None or not session.user.is_guest or session.user.localpart != localpart:
        raise MatrixError(
            "M_FORBIDDEN", "Cannot register a taken user ID without that guest's access token"
        )
    return session.user


def do_upgrade_guest(
    guest: User, password: str | None, *, password_hash: str | None = None
) -> User:
    """Make a guest account a full one, keeping its user ID, rooms and devices; its
    sessions stay valid. ``password_hash`` as for :func:`do_create_user`. 400
    M_USER_IN_USE if it was upgraded meanwhile."""
    if password is not None:
        passwords.check_new_password(password)
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=guest.pk, is_active=True).first()
        if user is None or not user.is_guest:
            raise MatrixError("M_USER_IN_USE", "User ID already taken")
        if password is not None:
            user.set_password(password)
        elif password_hash is not None:
            user.password = password_hash
        user.is_guest = False
        user.save(update_fields=["password", "is_guest"])
    return user


# --- Shared-secret registration, compatible with Synapse's /_synapse/admin/v1/register ---

NONCE_LIFETIME_S = 60


def new_registration_nonce() -> str:
    if not settings.REGISTRATION_SHARED_SECRET:
        raise MatrixError("M_FORBIDDEN", "Shared secret registration is not enabled", status=400)
    nonce = secrets.token_hex(32)
    cache.set(f"regnonce:{nonce}", 1, NONCE_LIFETIME_S)
    return nonce


def expected_mac(
    nonce: str, username: str, password: str, admin: bool, user_type: str | None
) -> str:
    mac = hmac.new(settings.REGISTRATION_SHARED_SECRET.encode("utf-8"), digestmod=hashlib.sha1)
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    if user_type:
        parts.append(user_type)
    mac.update(b"\x00".join(p.encode("utf-8") for p in parts))
    return mac.hexdigest()


def do_shared_secret_register(
    nonce: str, username: str, password: str, admin: bool, mac: str, user_type: str | None
) -> User:
    if not settings.REGISTRATION_SHARED_SECRET:
        raise MatrixError("M_FORBIDDEN", "Shared secret registration is not enabled", status=400)
    # The nonce is single use: take it out of the cache before checking anything else.
    if not cache.delete(f"regnonce:{nonce}"):
        raise MatrixError("M_UNKNOWN", "Unrecognised nonce")
    if not hmac.compare_digest(expected_mac(nonce, username, password, admin, user_type), mac):
        raise MatrixError("M_FORBIDDEN", "HMAC incorrect")
    localpart = check_username_available(username)
    return do_create_user(localpart, password, admin=admin)
