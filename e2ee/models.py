"""End-to-end encryption support: send-to-device messages (Client-Server API,
"Send-to-Device messaging") and the public keys clients encrypt with (device keys,
one-time and fallback keys, cross-signing keys and signatures, device list changes)."""

from __future__ import annotations

from django.db import models

from accounts.models import Device, User


class ToDeviceMessage(models.Model):
    """A message waiting for one device, until a later /sync token acknowledges it.

    Deleting the device deletes its pending messages (the foreign key cascades).
    """

    recipient = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="to_device_inbox")
    # The recipient's IDs, which /sync reads the inbox by (no join with the devices).
    user_id = models.CharField(max_length=255)
    device_id = models.CharField(max_length=255)
    sender = models.CharField(max_length=255)
    type = models.CharField(max_length=255)
    content = models.JSONField(default=dict)
    # Position on the to_device stream; one /sendToDevice request shares one position,
    # which is unique per recipient device (a request sends one message per device).
    stream_id = models.BigIntegerField()
    # Random, unique per message: the ID federation will carry (message_id in m.direct_to_device).
    message_id = models.CharField(max_length=64)

    class Meta:
        indexes = [
            models.Index(fields=["user_id", "device_id", "stream_id"], name="to_device_inbox")
        ]

    def __str__(self) -> str:
        return f"{self.type} from {self.sender} to {self.user_id}/{self.device_id}"


class ToDeviceTransaction(models.Model):
    """A /sendToDevice transaction already handled, so that a retry sends nothing."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=255)
    txn_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "event_type", "txn_id"], name="to_device_txn_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} txn {self.txn_id}"


class FederatedToDeviceMessage(models.Model):
    """An m.direct_to_device EDU another server sent, remembered by its ``message_id``
    so that the same EDU sent again (a retried transaction under a new ID, a resent
    EDU) is delivered once (Server-Server API, "Send-to-device messaging": the message
    ID is unique per sending server). Kept for FEDERATED_TO_DEVICE_RETENTION_MS
    (e2ee.services.to_device), then purged."""

    origin = models.CharField(max_length=255)
    message_id = models.CharField(max_length=255)
    received_ts = models.BigIntegerField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["origin", "message_id"], name="federated_to_device_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.message_id} from {self.origin}"


# --- Keys (Client-Server API, "End-to-End Encryption", "Key Distribution") ----------------
#
# The server holds public keys only. ``owner`` (the device or user) makes the keys go
# with it; rows also carry the owner's IDs as strings, as the inbox does, so that
# /keys/query, /keys/claim and /sync read them without joins.


class DeviceKeys(models.Model):
    """A device's identity keys, as it uploaded them (less ``unsigned``), signed by its
    own ed25519 key. Signatures others add later are :class:`KeySignature` rows."""

    owner = models.OneToOneField(Device, on_delete=models.CASCADE, related_name="e2e_keys")
    user_id = models.CharField(max_length=255)
    device_id = models.CharField(max_length=255)
    # The public key the device signs with: its fingerprint for other clients.
    ed25519_key = models.CharField(max_length=64)
    key_json = models.JSONField()

    class Meta:
        verbose_name = "device keys"
        verbose_name_plural = "device keys"
        indexes = [models.Index(fields=["user_id", "device_id"], name="device_keys_owner")]

    def __str__(self) -> str:
        return f"keys of {self.user_id}/{self.device_id}"


class OneTimeKey(models.Model):
    """An unclaimed one-time key. Claiming deletes it in the statement that reads it, so
    it is handed out once; ``id`` is the order of upload, the order of claiming."""

    owner = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    device_id = models.CharField(max_length=255)
    algorithm = models.CharField(max_length=64)
    key_id = models.CharField(max_length=255)
    # A key object ({"key", "signatures"}) or, for unsigned algorithms, a string.
    key_json = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "device_id", "algorithm", "key_id"], name="one_time_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.key_id} of {self.user_id}/{self.device_id}"


class FallbackKey(models.Model):
    """A device's fallback key for one algorithm: given out when its one-time keys ran
    out, and not consumed; ``used`` once it has been (/sync's
    device_unused_fallback_key_types lists the unused ones)."""

    owner = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    device_id = models.CharField(max_length=255)
    algorithm = models.CharField(max_length=64)
    key_id = models.CharField(max_length=255)
    key_json = models.JSONField()
    used = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "device_id", "algorithm"], name="fallback_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"fallback {self.algorithm}:{self.key_id} of {self.user_id}/{self.device_id}"


class CrossSigningKey(models.Model):
    """A user's current master, self-signing or user-signing key (Cross-signing)."""

    MASTER = "master"
    SELF_SIGNING = "self_signing"
    USER_SIGNING = "user_signing"
    USAGES = [(MASTER, "master"), (SELF_SIGNING, "self-signing"), (USER_SIGNING, "user-signing")]

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    usage = models.CharField(max_length=16, choices=USAGES)
    # Unpadded base64; the key ID is "ed25519:<public_key>".
    public_key = models.CharField(max_length=64)
    key_json = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "usage"], name="cross_signing_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.usage} key of {self.user_id}"


class KeySignature(models.Model):
    """A signature uploaded with POST /keys/signatures/upload, on a device's keys
    (``target_key_id`` = device ID) or a master key (``target_key_id`` = its public key).

    Who may see it ("Key and signature security"): everyone when the signer owns the
    target; only the signer otherwise (a user-signing key's signature of another user).
    """

    target_user_id = models.CharField(max_length=255)
    target_key_id = models.CharField(max_length=255)
    signer_user_id = models.CharField(max_length=255)
    # "ed25519:<device ID or public key>"
    signer_key_id = models.CharField(max_length=255)
    signature = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["target_user_id", "target_key_id", "signer_user_id", "signer_key_id"],
                name="key_signature_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.signer_key_id} of {self.signer_user_id} on {self.target_key_id}"


class DeviceListChange(models.Model):
    """A user's devices or cross-signing keys changed at ``stream_id`` (device_lists
    stream): /sync and /keys/changes tell the users sharing a room with them."""

    user_id = models.CharField(max_length=255)
    stream_id = models.BigIntegerField()
    # A change only the user sees: their user-signing key, which /keys/query shows no
    # one else ("Cross-signing"), so nobody else has anything to fetch again.
    owner_only = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["stream_id"], name="device_list_change_stream"),
            models.Index(fields=["user_id", "stream_id"], name="device_list_change_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} at {self.stream_id}"


# --- Other servers' users (Server-Server API, "Device Management", "End-to-End Encryption")
#
# A cache of remote users' device lists, kept only for users sharing a room with a local
# user: filled from their server (/user/keys/query, /user/devices) and kept current by the
# m.device_list_update and m.signing_key_update EDUs it sends. Keys are stored as their
# server sent them, and only if they check: a device's keys signed by the device's own
# ed25519 key, a self-signing key signed by the master key.


class RemoteDeviceList(models.Model):
    """What this server holds of one remote user's devices and cross-signing keys."""

    user_id = models.CharField(max_length=255, unique=True)
    server_name = models.CharField(max_length=255)
    # The stream_id of the user's m.device_list_update sequence this copy is at (of the
    # last update applied, or of the /user/devices snapshot); None when filled from
    # /user/keys/query, which has no stream_id (the next update then resyncs).
    stream_id = models.BigIntegerField(null=True, blank=True)
    # The stream_ids applied recently: an update whose prev_id are all here follows on.
    recent_stream_ids = models.JSONField(default=list)
    # Not to be trusted: an update was missed (an unknown prev_id), or the user stopped
    # sharing a room with local users (their server stopped sending updates). A stale
    # list is fetched again before it is used.
    stale = models.BooleanField(default=False)
    # A failed resync is retried from then on (backoff).
    retry_at_ts = models.BigIntegerField(null=True, blank=True)
    master_key = models.JSONField(null=True, blank=True)
    self_signing_key = models.JSONField(null=True, blank=True)
    updated_ts = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["server_name"], name="remote_device_list_server"),
            models.Index(fields=["stale", "retry_at_ts"], name="remote_device_list_stale"),
        ]

    def __str__(self) -> str:
        return f"devices of {self.user_id}"


class RemoteDevice(models.Model):
    """One device of a remote user, as its server described it."""

    device_list = models.ForeignKey(
        RemoteDeviceList, on_delete=models.CASCADE, related_name="devices"
    )
    user_id = models.CharField(max_length=255)
    device_id = models.CharField(max_length=255)
    display_name = models.CharField(max_length=512, null=True, blank=True)
    # The device keys (less ``unsigned``), checked; None while the device has published none.
    key_json = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "device_id"], name="remote_device_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.device_id}"


class LocalDeviceListStream(models.Model):
    """The head of a local user's m.device_list_update sequence: the stream_id of the
    last update sent about them (the next has it as prev_id), which GET /user/devices
    gives with its snapshot."""

    user_id = models.CharField(max_length=255, unique=True)
    stream_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id} at {self.stream_id}"
