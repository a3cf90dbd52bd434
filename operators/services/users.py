"""Operator actions on local users, shared by the admin API and the portal.

Each action does its work through the accounts (and rooms, media) services the client
API uses, and records its audit entry in the same transaction: the action and its
entry are stored together or not at all. Signature convention: the target first, then
``actor`` (who acts), ``via`` ("api" or "portal") and ``ip`` as keywords.
"""

from __future__ import annotations

import logging
import secrets
import string
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Device, RegistrationToken, User, UserThreepid
from accounts.services import (
    deactivation,
    passwords,
    profile,
    registration,
    sessions,
    threepid_binding,
    threepids,
)
from accounts.services.sessions import NewSession
from media.models import LocalMedia
from media.services import moderation as media_moderation
from operators.models import AdminJob
from operators.services import audit, jobs
from protocol.errors import MatrixError
from protocol.identifiers import parse_user_id
from rooms.services import user_directory

logger = logging.getLogger(__name__)

USER_TYPES = (None, "support", "bot")


def access_local_user(user_id: str) -> User:
    """The local user ``user_id`` names, deactivated or not: 400 if it is not one of
    ours, 404 M_NOT_FOUND if nobody has it (Synapse's answers)."""
    try:
        ident = parse_user_id(user_id)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", "Invalid user ID") from None
    if ident.domain != settings.SERVER_NAME:
        raise MatrixError("M_UNKNOWN", "Can only look up local users")
    user = User.objects.filter(localpart=ident.localpart).first()
    if user is None:
        raise MatrixError("M_NOT_FOUND", "User not found", status=404)
    return user


def _locked(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


# --- Account state ---------------------------------------------------------------------


def deactivate_user(
    user_id: str, *, actor: str, via: str = "api", ip: str = "", erase: bool = False
) -> None:
    """Deactivate (and with ``erase`` also erase) a local account, as the user could."""
    user = access_local_user(user_id)
    with transaction.atomic():
        deactivation.do_deactivate_account(user, erase=erase)
        audit.record(actor, "user.deactivate", user_id, via=via, ip=ip, erase=erase)


def reset_password(
    user_id: str,
    new_password: str,
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
    logout_devices: bool = True,
) -> None:
    user = access_local_user(user_id)
    with transaction.atomic():
        passwords.do_change_password(
            _locked(user), new_password, logout_devices=logout_devices, keep=None
        )
        audit.record(
            actor, "user.reset_password", user_id, via=via, ip=ip, logout_devices=logout_devices
        )


def _set_flag(
    user_id: str, field: str, value: bool, action: str, *, actor: str, via: str, ip: str
) -> None:
    user = access_local_user(user_id)
    with transaction.atomic():
        locked = _locked(user)
        setattr(locked, field, value)
        fields = [field]
        if field == "is_staff":
            locked.is_superuser = value
            fields.append("is_superuser")
        locked.save(update_fields=fields)
        audit.record(actor, action, user_id, via=via, ip=ip, value=value)


def set_admin(user_id: str, admin: bool, *, actor: str, via: str = "api", ip: str = "") -> None:
    _set_flag(user_id, "is_staff", admin, "user.set_admin", actor=actor, via=via, ip=ip)


def suspend_user(
    user_id: str, suspended: bool, *, actor: str, via: str = "api", ip: str = ""
) -> None:
    _set_flag(user_id, "is_suspended", suspended, "user.suspend", actor=actor, via=via, ip=ip)


def lock_user(user_id: str, locked: bool, *, actor: str, via: str = "api", ip: str = "") -> None:
    _set_flag(user_id, "is_locked", locked, "user.lock", actor=actor, via=via, ip=ip)
    user_directory.do_update_local_user(user_id)


def set_shadow_banned(
    user_id: str, banned: bool, *, actor: str, via: str = "api", ip: str = ""
) -> None:
    _set_flag(user_id, "is_shadow_banned", banned, "user.shadow_ban", actor=actor, via=via, ip=ip)


def set_ratelimit_override(
    user_id: str,
    messages_per_second: int,
    burst_count: int,
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
) -> None:
    if messages_per_second < 0 or burst_count < 0:
        raise MatrixError("M_INVALID_PARAM", "Rates must be non-negative integers")
    user = access_local_user(user_id)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(
            ratelimit_messages_per_second=messages_per_second, ratelimit_burst_count=burst_count
        )
        audit.record(
            actor,
            "user.ratelimit_override",
            user_id,
            via=via,
            ip=ip,
            messages_per_second=messages_per_second,
            burst_count=burst_count,
        )


def clear_ratelimit_override(user_id: str, *, actor: str, via: str = "api", ip: str = "") -> None:
    user = access_local_user(user_id)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(
            ratelimit_messages_per_second=None, ratelimit_burst_count=None
        )
        audit.record(actor, "user.ratelimit_override_clear", user_id, via=via, ip=ip)


def log_out_everywhere(user_id: str, *, actor: str, via: str = "api", ip: str = "") -> None:
    user = access_local_user(user_id)
    with transaction.atomic():
        sessions.do_logout_all(user)
        audit.record(actor, "user.logout_all", user_id, via=via, ip=ip)


def login_as(
    user_id: str,
    valid_until_ms: int | None = None,
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
) -> str:
    """An access token for ``user_id`` on a new device (Synapse's puppet login): the
    operator acts as the user until the token expires or the device is deleted."""
    user = access_local_user(user_id)
    if not user.is_active:
        raise MatrixError("M_FORBIDDEN", "The user is deactivated", status=400)
    with transaction.atomic():
        new: NewSession = sessions.do_create_session(user, initial_display_name="Admin login")
        if valid_until_ms is not None:
            sessions.do_set_session_expiry(new.access_token, valid_until_ms)
        audit.record(
            actor, "user.login_as", user_id, via=via, ip=ip, valid_until_ms=valid_until_ms
        )
    return new.access_token


# --- Create or modify (PUT /_synapse/admin/v2/users/{userId}) -----------------------------


def create_or_modify_user(
    user_id: str, changes: dict[str, Any], *, actor: str, via: str = "api", ip: str = ""
) -> tuple[User, bool]:
    """Create the local user ``user_id`` with ``changes``, or apply them to it. Known
    changes: password, logout_devices, displayname, avatar_url, admin, deactivated,
    locked, user_type, threepids (canonical (medium, address) pairs that replace the
    user's). Returns the user and whether it was created."""
    try:
        ident = parse_user_id(user_id)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", "Invalid user ID") from None
    if ident.domain != settings.SERVER_NAME:
        raise MatrixError("M_INVALID_PARAM", "This endpoint can only be used with local users")
    if changes.get("user_type") not in USER_TYPES:
        raise MatrixError("M_INVALID_PARAM", "Invalid user type")
    with transaction.atomic():
        user = User.objects.select_for_update().filter(localpart=ident.localpart).first()
        created = user is None
        if user is None:
            if changes.get("deactivated"):
                raise MatrixError("M_INVALID_PARAM", "A new user cannot be deactivated")
            registration.check_username_available(ident.localpart)
            user = registration.do_create_user(
                ident.localpart, changes.get("password"), admin=bool(changes.get("admin"))
            )
        elif "password" in changes and changes["password"] is not None:
            passwords.do_change_password(
                user,
                changes["password"],
                logout_devices=changes.get("logout_devices", True),
                keep=None,
            )
        for key in ("displayname", "avatar_url"):
            if key in changes:
                if changes[key] is None or changes[key] == "":
                    profile.do_delete_profile_field(user, key)
                else:
                    profile.do_set_profile_field(user, key, changes[key])
        fields: list[str] = []
        if "admin" in changes and not created:
            user.is_staff = user.is_superuser = bool(changes["admin"])
            fields += ["is_staff", "is_superuser"]
        if "locked" in changes:
            user.is_locked = bool(changes["locked"])
            fields.append("is_locked")
        if "user_type" in changes:
            user.user_type = changes["user_type"]
            fields.append("user_type")
        if fields:
            user.save(update_fields=fields)
        if "threepids" in changes:
            threepids.do_replace_threepids(user, changes["threepids"])
        if not created and "deactivated" in changes:
            if changes["deactivated"] and user.is_active:
                deactivation.do_deactivate_account(user)
            elif not changes["deactivated"] and not user.is_active:
                # Reactivated: it may log in again (with the password given here).
                user.is_active = True
                user.deactivated_at = None
                user.is_erased = False
                user.save(update_fields=["is_active", "deactivated_at", "is_erased"])
        if changes.keys() & {"locked", "user_type", "deactivated"}:
            # Locked and support users are not in the user directory.
            user_directory.do_update_local_user(user.user_id)
        logged = {k: v for k, v in changes.items() if k != "password"}
        if "password" in changes:
            logged["password"] = "(changed)"
        audit.record(
            actor, "user.create" if created else "user.modify", user_id, via=via, ip=ip, **logged
        )
    user.refresh_from_db()
    return user, created


def remove_threepid(
    user_id: str, medium: str, address: str, *, actor: str, via: str = "api", ip: str = ""
) -> None:
    """Take a third-party identifier off an account (it can no longer log in or reset
    the password with it), and unbind it from the identity servers it was bound at
    through this server (best effort: one that cannot be reached is logged, the address
    goes all the same); 404 M_NOT_FOUND if the account does not have it."""
    user = access_local_user(user_id)
    if not UserThreepid.objects.filter(user=user, medium=medium, address=address).exists():
        raise MatrixError("M_NOT_FOUND", "The user has no such third-party identifier")
    try:
        threepid_binding.do_unbind_threepid(user, medium, address, None)
    except MatrixError as exc:
        logger.warning("removing %s of %s: unbinding failed: %s", address, user_id, exc.error)
    with transaction.atomic():
        if not threepids.do_remove_threepid(user, medium, address):
            raise MatrixError("M_NOT_FOUND", "The user has no such third-party identifier")
        audit.record(
            actor, "user.threepid_remove", user_id, via=via, ip=ip, medium=medium, address=address
        )


# --- Devices ---------------------------------------------------------------------------


def create_device(
    user_id: str, device_id: str, *, actor: str, via: str = "api", ip: str = ""
) -> Device:
    """A device without a session (Synapse's admin device creation)."""
    user = access_local_user(user_id)
    sessions.check_device_fields(device_id, None)
    with transaction.atomic():
        device, _ = Device.objects.get_or_create(user=user, device_id=device_id)
        audit.record(actor, "device.create", user_id, via=via, ip=ip, device_id=device_id)
    return device


def rename_device(
    user_id: str,
    device_id: str,
    display_name: str,
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
) -> None:
    user = access_local_user(user_id)
    with transaction.atomic():
        sessions.do_rename_device(user, device_id, display_name)
        audit.record(
            actor,
            "device.rename",
            user_id,
            via=via,
            ip=ip,
            device_id=device_id,
            display_name=display_name,
        )


def delete_devices(
    user_id: str, device_ids: list[str], *, actor: str, via: str = "api", ip: str = ""
) -> None:
    user = access_local_user(user_id)
    with transaction.atomic():
        sessions.do_delete_devices(user, device_ids)
        audit.record(actor, "device.delete", user_id, via=via, ip=ip, device_ids=device_ids)


# --- Media -----------------------------------------------------------------------------


def delete_user_media(
    user_id: str, media_ids: list[str], *, actor: str, via: str = "api", ip: str = ""
) -> list[str]:
    """Delete these media of the user (all of them for an empty list is not offered:
    the caller names them, e.g. one page of the listing)."""
    user = access_local_user(user_id)
    with transaction.atomic():
        media = LocalMedia.objects.filter(user_id=user.user_id, media_id__in=media_ids)
        deleted = list(media.values_list("media_id", flat=True))
        media_moderation.do_delete(media)
        audit.record(actor, "media.delete_user_media", user_id, via=via, ip=ip, media=deleted)
    return deleted


# --- Redacting all of a user's events (a job) --------------------------------------------

REDACT_KIND = "user.redact_events"


def redact_user_events(
    user_id: str,
    rooms: list[str],
    reason: str | None = None,
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
    limit: int | None = None,
) -> AdminJob:
    """Schedule the redaction of the user's events in ``rooms`` (all its rooms when
    empty); the Celery task operators.tasks.redact_user_events does it and reports
    progress in the job."""
    try:
        parse_user_id(user_id)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", "Invalid user ID") from None
    from operators import tasks

    with transaction.atomic():
        job = jobs.create(
            REDACT_KIND,
            user_id,
            actor,
            {"rooms": rooms, "reason": reason, "limit": limit},
        )
        # The default job_id is a UUID until the row is read back.
        job.job_id = job_id = str(job.job_id)
        audit.record(actor, "user.redact_events", user_id, via=via, ip=ip, rooms=rooms, job=job_id)
        transaction.on_commit(lambda: tasks.redact_user_events.delay(job_id))
    return job


# --- Registration tokens ---------------------------------------------------------------

TOKEN_ALPHABET = string.ascii_letters + string.digits + "._~-"
TOKEN_CHARS_RE = set(TOKEN_ALPHABET)


def _check_token_fields(uses_allowed: Any, expiry_time: Any) -> None:
    if uses_allowed is not None and (
        not isinstance(uses_allowed, int) or isinstance(uses_allowed, bool) or uses_allowed < 0
    ):
        raise MatrixError("M_INVALID_PARAM", "uses_allowed must be a non-negative integer or null")
    if expiry_time is not None:
        if not isinstance(expiry_time, int) or isinstance(expiry_time, bool) or expiry_time < 0:
            raise MatrixError("M_INVALID_PARAM", "expiry_time must be an integer or null")
        if expiry_time < int(timezone.now().timestamp() * 1000):
            raise MatrixError("M_INVALID_PARAM", "expiry_time must not be in the past")


def create_registration_token(
    token: str | None,
    *,
    length: int = 16,
    uses_allowed: int | None = None,
    expiry_time: int | None = None,
    actor: str,
    via: str = "api",
    ip: str = "",
) -> RegistrationToken:
    _check_token_fields(uses_allowed, expiry_time)
    if token is None:
        if not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= 64:
            raise MatrixError("M_INVALID_PARAM", "length must be an integer from 1 to 64")
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))
    elif not 0 < len(token) <= 64 or not set(token) <= TOKEN_CHARS_RE:
        raise MatrixError(
            "M_INVALID_PARAM",
            "token must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~', '-'",
        )
    with transaction.atomic():
        if RegistrationToken.objects.filter(token=token).exists():
            raise MatrixError("M_INVALID_PARAM", f"Token already exists: {token}")
        row = RegistrationToken.objects.create(
            token=token, uses_allowed=uses_allowed, expiry_time_ms=expiry_time
        )
        audit.record(
            actor,
            "registration_token.create",
            token,
            via=via,
            ip=ip,
            uses_allowed=uses_allowed,
            expiry_time=expiry_time,
        )
    return row


def _token(token: str) -> RegistrationToken:
    row = RegistrationToken.objects.select_for_update().filter(token=token).first()
    if row is None:
        raise MatrixError("M_NOT_FOUND", f"No such registration token: {token}", status=404)
    return row


def update_registration_token(
    token: str, changes: dict[str, Any], *, actor: str, via: str = "api", ip: str = ""
) -> RegistrationToken:
    """Change ``uses_allowed`` and/or ``expiry_time`` (null: unlimited / never)."""
    _check_token_fields(changes.get("uses_allowed"), changes.get("expiry_time"))
    with transaction.atomic():
        row = _token(token)
        if "uses_allowed" in changes:
            row.uses_allowed = changes["uses_allowed"]
        if "expiry_time" in changes:
            row.expiry_time_ms = changes["expiry_time"]
        row.save(update_fields=["uses_allowed", "expiry_time_ms"])
        audit.record(actor, "registration_token.update", token, via=via, ip=ip, **changes)
    return row


def delete_registration_token(token: str, *, actor: str, via: str = "api", ip: str = "") -> None:
    with transaction.atomic():
        _token(token).delete()
        audit.record(actor, "registration_token.delete", token, via=via, ip=ip)


def run_redact_job(job: AdminJob) -> None:
    """Redact the job's user's events, room by room, newest first; resumable: events
    already redacted are skipped, so a restarted worker carries on where it stopped.
    Membership and room-creation events stay (they hold the room's state together)."""
    from rooms.models import Event
    from rooms.selectors import memberships_of
    from rooms.services.events import SendContext
    from rooms.services.redaction import do_redact

    jobs.start(job)
    user_id = job.target
    rooms: list[str] = job.params.get("rooms") or [m.room.room_id for m in memberships_of(user_id)]
    reason = job.params.get("reason")
    limit = job.params.get("limit")
    ident = parse_user_id(user_id)
    # Anyone may redact their own events: a local user's are redacted in their name, a
    # remote user's in the operator's (who needs the power to).
    sender = user_id if ident.domain == settings.SERVER_NAME else job.actor
    failed: dict[str, str] = dict(job.progress.get("failed_redactions", {}))
    done = int(job.progress.get("redacted", 0))
    try:
        for room_id in rooms:
            events = (
                Event.objects.filter(
                    room__room_id=room_id, sender=user_id, redacted_by__isnull=True
                )
                .exclude(type__in=["m.room.member", "m.room.create", "m.room.redaction"])
                .exclude(outlier=True)
                .order_by("-stream_ordering")
                .values_list("event_id", flat=True)
            )
            for event_id in events[:limit] if limit else events:
                if event_id in failed:
                    continue
                try:
                    do_redact(room_id, SendContext(sender=sender), event_id, reason)
                    done += 1
                except MatrixError as error:
                    failed[event_id] = error.error
                jobs.report(job, redacted=done, failed_redactions=failed)
                # A sign of life for resume_redact_jobs (report() leaves updated_at).
                AdminJob.objects.filter(pk=job.pk).update(updated_at=timezone.now())
    except Exception as error:  # the job says why it stopped; the worker logs the rest
        jobs.finish(job, error=str(error))
        raise
    jobs.report(job, redacted=done, failed_redactions=failed)
    jobs.finish(job)


# A job queued this long ago and not started lost its task; one active and silent this
# long lost its worker.
LOST_AFTER_S = 600


def resume_redact_jobs() -> list[str]:
    """The redaction jobs a worker should (re)start: those no worker is running."""
    stale = timezone.now() - timedelta(seconds=LOST_AFTER_S)
    return [job.job_id for job in jobs.unfinished(REDACT_KIND) if job.updated_at < stale]
