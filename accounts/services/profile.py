"""Profile fields (Client-Server API, "Profiles")."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import transaction

from accounts.models import User
from accounts.signals import profile_changed
from protocol.errors import MatrixError

MAX_PROFILE_BYTES = 64 * 1024
MAX_KEY_BYTES = 255
# The keyName pattern of PUT /profile/{userId}/{keyName}.
_KEY_NAME = re.compile(r"^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)\Z")
MAX_DISPLAYNAME_LENGTH = 256


def check_key_name(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise MatrixError("M_KEY_TOO_LARGE", "Profile key is longer than 255 bytes")
    if not _KEY_NAME.match(key):
        raise MatrixError("M_INVALID_PARAM", "Invalid profile key")


def check_value(key: str, value: Any) -> None:
    if key == "displayname" and not (isinstance(value, str) or value is None):
        raise MatrixError("M_BAD_JSON", "'displayname' must be a string")
    if key == "displayname" and isinstance(value, str) and len(value) > MAX_DISPLAYNAME_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "'displayname' is too long")
    if key == "avatar_url" and value is not None:
        if not isinstance(value, str):
            raise MatrixError("M_BAD_JSON", "'avatar_url' must be a string")
        if value and not value.startswith("mxc://"):
            raise MatrixError("M_INVALID_PARAM", "'avatar_url' must be an mxc:// URI")
    if key == "m.tz" and not isinstance(value, str):
        raise MatrixError("M_BAD_JSON", "'m.tz' must be a string")


def do_set_profile_field(user: User, key: str, value: Any) -> None:
    """PUT /profile/{userId}/{keyName}. Room membership updates come with rooms."""
    check_key_name(key)
    check_value(key, value)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        profile = dict(locked.profile)
        profile[key] = value
        size = len(json.dumps(profile, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_PROFILE_BYTES:
            raise MatrixError("M_PROFILE_TOO_LARGE", "Profile would exceed 64 KiB")
        locked.profile = profile
        locked.save(update_fields=["profile"])
        user.profile = profile
    profile_changed.send(sender=User, user_id=user.user_id, key=key)


def do_delete_profile_field(user: User, key: str) -> None:
    """DELETE /profile/{userId}/{keyName}."""
    check_key_name(key)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        profile = dict(locked.profile)
        profile.pop(key, None)
        locked.profile = profile
        locked.save(update_fields=["profile"])
        user.profile = profile
    profile_changed.send(sender=User, user_id=user.user_id, key=key)
