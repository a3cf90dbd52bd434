"""Accounts: local users, their devices and sessions, account data and filters."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models

from config.model_loading import FastLoadModel
from protocol.identifiers import is_valid_user_localpart


def validate_localpart(value: str) -> None:
    if not is_valid_user_localpart(value):
        raise ValidationError(
            "A user name may contain only a-z, 0-9, and the characters . _ = - / +"
        )


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, localpart: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(localpart=localpart, **extra)
        user.set_password(password) if password else user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, localpart: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(localpart, password, **extra)


class User(FastLoadModel, AbstractBaseUser, PermissionsMixin):
    """A Matrix user of this homeserver; ``is_staff`` users may use the admin portal.

    ``is_active=False`` means deactivated: the account can never log in again.
    """

    localpart = models.CharField(max_length=255, unique=True, validators=[validate_localpart])
    is_staff = models.BooleanField(default=False, help_text="May log into the admin portal.")
    is_active = models.BooleanField(
        default=True, help_text="Unticking this deactivates the account (see the action)."
    )
    is_guest = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    # Profile fields (Client-Server API, "Profiles"): displayname, avatar_url, m.tz and
    # custom namespaced keys, as one JSON object under 64 KiB.
    profile = models.JSONField(default=dict, blank=True)
    # Account moderation (Client-Server API, "Account moderation"), set by operators:
    # a locked account gets 401 M_USER_LOCKED everywhere but /logout; a suspended one
    # may read, leave and log out but not join, invite, send or edit its profile
    # (403 M_USER_SUSPENDED); a shadow-banned one is told its sends and invites worked
    # while nobody receives them (as Synapse does).
    is_locked = models.BooleanField(default=False)
    is_suspended = models.BooleanField(default=False)
    is_shadow_banned = models.BooleanField(default=False)
    # Deactivated with erasure: the profile and account data were removed.
    is_erased = models.BooleanField(default=False)
    # Synapse's user_type: None for a normal user, "support" or "bot".
    user_type = models.CharField(max_length=32, null=True, blank=True)
    # An operator's message rate limit for this user in place of the server's (Synapse's
    # override_ratelimit); None: the default. 0 messages per second: not limited. Kept
    # on the user, which every request has already loaded: sends pay no extra query.
    ratelimit_messages_per_second = models.PositiveIntegerField(null=True, blank=True)
    ratelimit_burst_count = models.PositiveIntegerField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "localpart"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "accounts_user"

    @property
    def user_id(self) -> str:
        return f"@{self.localpart}:{settings.SERVER_NAME}"

    @property
    def displayname(self) -> str | None:
        value = self.profile.get("displayname")
        return value if isinstance(value, str) else None

    @property
    def avatar_url(self) -> str | None:
        value = self.profile.get("avatar_url")
        return value if isinstance(value, str) else None

    @property
    def message_ratelimit(self) -> tuple[float, int] | None:
        """(rate, burst) of this user's message rate override, or None."""
        if self.ratelimit_messages_per_second is None:
            return None
        return float(self.ratelimit_messages_per_second), self.ratelimit_burst_count or 0

    def __str__(self) -> str:
        return self.user_id


class Device(FastLoadModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=255)
    display_name = models.CharField(max_length=512, null=True, blank=True)
    last_seen_ip = models.CharField(max_length=64, null=True, blank=True)
    last_seen_ts = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "device_id"], name="device_unique_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.device_id} ({self.user.localpart})"


class AccessToken(FastLoadModel):
    """One login session: an access token, and a refresh token if the client asked.

    Only SHA-256 digests are stored, so a database dump reveals no usable session.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="access_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    refresh_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # The refresh token this session was refreshed from. It stays usable until this
    # session's access or refresh token is first used (Client-Server API, POST /refresh).
    previous_refresh_token_hash = models.CharField(
        max_length=64, unique=True, null=True, blank=True
    )
    # Epoch milliseconds after which the access token is refused; None: never expires.
    expires_at_ms = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "session"

    def __str__(self) -> str:
        return f"session of {self.device_id_str} ({self.user_id})"

    @property
    def device_id_str(self) -> str:
        return self.device.device_id


class AccountData(models.Model):
    """Global (room_id == "") and per-room account data, one row per (user, room, type)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_data")
    room_id = models.CharField(max_length=255, blank=True, default="")
    type = models.CharField(max_length=255)
    content = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)
    # Position on the account_data stream of the last change (for /sync).
    stream_id = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "account data"
        constraints = [
            models.UniqueConstraint(fields=["user", "room_id", "type"], name="account_data_unique")
        ]
        indexes = [models.Index(fields=["user", "stream_id"], name="account_data_user_stream")]

    def __str__(self) -> str:
        return f"{self.type} of {self.user_id}" + (f" in {self.room_id}" if self.room_id else "")


class Filter(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="filters")
    filter_id = models.PositiveIntegerField()
    definition = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "filter_id"], name="filter_unique_per_user")
        ]

    def __str__(self) -> str:
        return f"filter {self.filter_id} of {self.user_id}"


class UIASession(models.Model):
    """A User-Interactive Authentication session (Client-Server API, "UIA")."""

    session_id = models.CharField(max_length=64, unique=True)
    # The endpoint the session was started for: a session cannot be reused elsewhere.
    uri = models.CharField(max_length=512)
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True)
    completed = models.JSONField(default=list)
    # The flows the endpoint offered, so the fallback page (which has no request of the
    # endpoint in hand) can tell which stages belong to this session.
    flows = models.JSONField(default=list)
    # Stage results worth remembering, e.g. the registration token that was accepted.
    results = models.JSONField(default=dict)
    created_at_ms = models.BigIntegerField()

    class Meta:
        verbose_name = "UIA session"

    def __str__(self) -> str:
        return self.session_id


class RegistrationToken(models.Model):
    """A token that lets someone register when TRELLIS_REGISTRATION=token."""

    token = models.CharField(max_length=64, unique=True)
    uses_allowed = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty means unlimited."
    )
    pending = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    expiry_time_ms = models.BigIntegerField(
        null=True, blank=True, help_text="Epoch milliseconds; empty means never."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.token


class OpenIdToken(models.Model):
    """A token a user hands a third party to prove who they are (Client-Server API,
    "OpenID"): the third party exchanges it at GET /_matrix/federation/v1/openid/userinfo.

    Only its SHA-256 digest is stored; it is good for nothing else and expires.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="openid_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    # Epoch milliseconds after which the token is refused.
    expires_at_ms = models.BigIntegerField(db_index=True)

    class Meta:
        verbose_name = "OpenID token"

    def __str__(self) -> str:
        return f"OpenID token of {self.user_id}"


class LoginToken(models.Model):
    """A single-use, short-lived ``m.login.token`` from POST /login/get_token.

    Only the SHA-256 digest is stored; the row is deleted when the token is used.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="login_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"login token of {self.user_id}"


class Medium(models.TextChoices):
    """The kinds of third-party identifier Trellis knows (Client-Server API, "3PID")."""

    EMAIL = "email"
    MSISDN = "msisdn"


class UserThreepid(models.Model):
    """A third-party identifier (email address, phone number) a user has proven to own.

    An address belongs to one account at most. ``address`` is canonical: emails in
    lower case, phone numbers as digits only (MSISDN form).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="threepids")
    medium = models.CharField(max_length=16, choices=Medium.choices)
    address = models.CharField(max_length=320)
    validated_at_ms = models.BigIntegerField()
    added_at_ms = models.BigIntegerField()

    class Meta:
        verbose_name = "third-party identifier"
        constraints = [
            models.UniqueConstraint(fields=["medium", "address"], name="threepid_unique_address")
        ]
        indexes = [models.Index(fields=["user", "medium"], name="threepid_user_medium")]

    def __str__(self) -> str:
        return f"{self.medium}:{self.address} of {self.user_id}"


class ThreepidValidationSession(models.Model):
    """Proof of ownership in progress: a token sent to an address, waiting to come back.

    Made by POST .../requestToken; the same ``client_secret``, medium and address with
    the same ``send_attempt`` answer with the same session and send nothing again. The
    token is stored as its SHA-256 digest. ``purpose`` is what the session may be used
    for: ``register``, ``add`` (to an account) or ``password`` (a reset).
    """

    sid = models.CharField(max_length=64, unique=True)
    client_secret = models.CharField(max_length=255)
    medium = models.CharField(max_length=16, choices=Medium.choices)
    address = models.CharField(max_length=320)
    purpose = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64)
    send_attempt = models.BigIntegerField()
    next_link = models.TextField(blank=True, default="")
    created_at_ms = models.BigIntegerField()
    # When the token was last sent; the token is good for a while after that.
    sent_at_ms = models.BigIntegerField()
    validated_at_ms = models.BigIntegerField(null=True, blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "3PID validation session"
        constraints = [
            models.UniqueConstraint(
                fields=["client_secret", "medium", "address", "purpose"],
                name="threepid_session_per_secret",
            )
        ]
        indexes = [models.Index(fields=["created_at_ms"], name="threepid_session_created")]

    def __str__(self) -> str:
        return f"validation {self.sid} of {self.medium}:{self.address}"


class ThreepidIdServerBinding(models.Model):
    """An identity server a user's address was bound to through this homeserver, so that
    removing the address (or the account) can unbind it there again."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="threepid_bindings")
    medium = models.CharField(max_length=16, choices=Medium.choices)
    address = models.CharField(max_length=320)
    id_server = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "medium", "address", "id_server"],
                name="threepid_binding_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.medium}:{self.address} of {self.user_id} bound at {self.id_server}"
