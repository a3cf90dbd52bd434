"""Passwords: checking, changing, and the login identifier forms that name a user."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from accounts import selectors_threepids
from accounts.models import AccessToken, User
from accounts.services import sessions, threepids
from protocol.errors import MatrixError
from protocol.identifiers import parse_user_id

MAX_PASSWORD_LENGTH = 512


def resolve_login_identifier(body: dict[str, Any]) -> str | None:
    """The local localpart a login or UIA password stage names, or None.

    Accepts ``identifier: {"type": "m.id.user", "user": ...}`` and the legacy top-level
    ``user``; ``user`` may be a localpart or a full user ID on this server. A third-party
    identifier (``m.id.thirdparty``, ``m.id.phone``, the deprecated top-level ``medium``
    and ``address``) names the account it belongs to; one no account has is None, which
    the caller answers as a wrong password (Client-Server API, "Login": 403). Raises for
    identifier types this server does not support.
    """
    identifier = body.get("identifier")
    if identifier is not None:
        if not isinstance(identifier, dict):
            raise MatrixError("M_BAD_JSON", "'identifier' must be an object")
        id_type = identifier.get("type")
        if id_type == "m.id.thirdparty":
            return _threepid_owner(identifier.get("medium"), identifier.get("address"))
        if id_type == "m.id.phone":
            return _phone_owner(identifier.get("country"), identifier.get("phone"))
        if id_type != "m.id.user":
            raise MatrixError("M_UNKNOWN", f"Unsupported identifier type {id_type!r}")
        user = identifier.get("user")
    elif "medium" in body or "address" in body:
        return _threepid_owner(body.get("medium"), body.get("address"))
    else:
        user = body.get("user")
    if user is None:
        raise MatrixError("M_MISSING_PARAM", "Missing 'identifier'")
    if not isinstance(user, str):
        raise MatrixError("M_BAD_JSON", "'user' must be a string")
    if user.startswith("@"):
        try:
            ident = parse_user_id(user)
        except ValueError:
            return None
        if ident.domain != settings.SERVER_NAME:
            return None
        return ident.localpart.lower()
    return user.lower()


def _threepid_owner(medium: Any, address: Any) -> str | None:
    if not isinstance(medium, str) or not isinstance(address, str):
        raise MatrixError("M_BAD_JSON", "A third-party identifier needs 'medium' and 'address'")
    try:
        canonical = threepids.canonical_address(medium, address)
    except MatrixError:
        return None
    owner = selectors_threepids.owner_of(medium, canonical)
    return owner.localpart if owner is not None else None


def _phone_owner(country: Any, phone: Any) -> str | None:
    if not isinstance(country, str) or not isinstance(phone, str):
        raise MatrixError("M_BAD_JSON", "m.id.phone needs 'country' and 'phone'")
    try:
        msisdn = threepids.canonical_msisdn(country, phone)
    except MatrixError:
        return None
    owner = selectors_threepids.owner_of("msisdn", msisdn)
    return owner.localpart if owner is not None else None


def check_user_password(user: User, password: str) -> bool:
    if len(password) > MAX_PASSWORD_LENGTH or not user.is_active:
        return False
    return user.check_password(password)


def check_new_password(password: str) -> None:
    if not password:
        raise MatrixError("M_WEAK_PASSWORD", "Password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "Password is too long")


def do_change_password(
    user: User, new_password: str, *, logout_devices: bool, keep: AccessToken | None
) -> None:
    """POST /account/password: set a new password, optionally ending other sessions
    (all of them when ``keep`` is None, as for a reset by email). The account's email
    addresses are told (a mail after the commit)."""
    check_new_password(new_password)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        if logout_devices:
            sessions.do_logout_other_sessions(user, keep)
        threepids.notify_password_changed(user)
