"""The identity service's data (Identity Service API v2): its access tokens, the terms its
users accepted, validation sessions, published associations, stored invitations and the
keys that sign for them.

It keeps its own records, apart from the homeserver's (accounts.UserThreepid and the
like): to a homeserver, this service is an identity server like any other, reached over
HTTP.
"""

from __future__ import annotations

from django.db import models


class Medium(models.TextChoices):
    EMAIL = "email"
    MSISDN = "msisdn"


class IdentityToken(models.Model):
    """An access token of the identity service (POST /account/register), kept as its
    SHA-256 digest. ``user_id`` is the Matrix user the OpenID token proved."""

    token_hash = models.CharField(max_length=64, unique=True)
    user_id = models.CharField(max_length=255, db_index=True)
    created_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return f"identity token of {self.user_id}"


class AcceptedTerms(models.Model):
    """A policy URL a user accepted (POST /terms); acceptances only accumulate."""

    user_id = models.CharField(max_length=255)
    url = models.CharField(max_length=2048)

    class Meta:
        verbose_name_plural = "accepted terms"
        constraints = [
            models.UniqueConstraint(fields=["user_id", "url"], name="identity_terms_unique")
        ]

    def __str__(self) -> str:
        return f"{self.url} accepted by {self.user_id}"


class ValidationSession(models.Model):
    """Proof of ownership of an address in progress or done (POST .../requestToken).

    One per ``client_secret``, medium and address: asking again with the same
    ``send_attempt`` answers with the same session and sends nothing. The token is kept
    as its SHA-256 digest. ``modified_at_ms`` is when it was created, last sent a token or
    validated: the session is good for 24 hours after that (identity-service-api.md,
    "Establishing associations").
    """

    sid = models.CharField(max_length=64, unique=True)
    client_secret = models.CharField(max_length=255)
    medium = models.CharField(max_length=16, choices=Medium.choices)
    address = models.CharField(max_length=320)
    token_hash = models.CharField(max_length=64)
    send_attempt = models.BigIntegerField()
    next_link = models.TextField(blank=True, default="")
    created_at_ms = models.BigIntegerField()
    modified_at_ms = models.BigIntegerField()
    validated_at_ms = models.BigIntegerField(null=True, blank=True)
    failed_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client_secret", "medium", "address"], name="identity_session_unique"
            )
        ]
        indexes = [models.Index(fields=["modified_at_ms"], name="identity_session_modified")]

    def __str__(self) -> str:
        return f"validation {self.sid} of {self.medium}:{self.address}"


class Association(models.Model):
    """A published binding of an address to a Matrix user ID (POST /3pid/bind).

    ``lookup_hash`` is the address's ``sha256`` lookup form under the current pepper, so a
    hashed /lookup is an indexed query.
    """

    medium = models.CharField(max_length=16, choices=Medium.choices)
    address = models.CharField(max_length=320)
    mxid = models.CharField(max_length=255)
    lookup_hash = models.CharField(max_length=64, db_index=True)
    ts = models.BigIntegerField()
    not_before = models.BigIntegerField()
    not_after = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["medium", "address"], name="identity_association_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.medium}:{self.address} -> {self.mxid}"


class LookupPepper(models.Model):
    """The pepper of hashed lookups (GET /hash_details), made once: a single row."""

    pepper = models.CharField(max_length=64)
    created_at_ms = models.BigIntegerField()

    def __str__(self) -> str:
        return "lookup pepper"


class EphemeralKey(models.Model):
    """A short-term public key made for one invitation (POST /store-invite). It is valid
    until the invitation is delivered to the homeserver of whoever bound the address."""

    public_key = models.CharField(max_length=64, unique=True)
    created_at_ms = models.BigIntegerField()
    revoked_at_ms = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ephemeral key {self.public_key}"


class PendingInvite(models.Model):
    """A room invitation to an address nobody has bound yet (POST /store-invite).

    When the address is bound, ``mxid`` is set and the invitation is delivered to that
    user's homeserver (PUT /_matrix/federation/v1/3pid/onbind) by a retrying task;
    ``delivered_at_ms`` is set once it answered 200.
    """

    medium = models.CharField(max_length=16, choices=Medium.choices)
    address = models.CharField(max_length=320)
    room_id = models.CharField(max_length=255)
    sender = models.CharField(max_length=255)
    token = models.CharField(max_length=64, unique=True)
    ephemeral_key = models.ForeignKey(EphemeralKey, on_delete=models.PROTECT)
    created_at_ms = models.BigIntegerField()
    mxid = models.CharField(max_length=255, blank=True, default="")
    bound_at_ms = models.BigIntegerField(null=True, blank=True)
    delivered_at_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["medium", "address"], name="identity_invite_address")]

    def __str__(self) -> str:
        return f"invite of {self.medium}:{self.address} to {self.room_id}"
