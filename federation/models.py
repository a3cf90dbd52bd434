"""Other servers' public signing keys, as fetched from them (or a notary) and checked."""

from __future__ import annotations

from django.db import models


class RemoteServerKey(models.Model):
    """One verify key of another server.

    A key listed in ``verify_keys`` is good for requests and events until
    ``valid_until_ts`` (already capped at seven days after fetching, as the spec demands);
    one listed in ``old_verify_keys`` has ``expired_ts`` set and is good for events signed
    before then only, never for requests.
    """

    server_name = models.CharField(max_length=255)
    key_id = models.CharField(max_length=255)
    # Unpadded base64 of the 32-byte ed25519 public key.
    verify_key = models.CharField(max_length=64)
    valid_until_ts = models.BigIntegerField()
    expired_ts = models.BigIntegerField(null=True, blank=True)
    fetched_ts = models.BigIntegerField()
    # The server the response came from: the key's owner, or the notary that vouched for it.
    fetched_from = models.CharField(max_length=255)
    # The key response this key was last read from, signatures and all, which this
    # server serves as a notary (federation.notary); None for keys stored without one.
    key_json = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server_name", "key_id"], name="remote_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.server_name} {self.key_id}"


class InboundTransaction(models.Model):
    """A transaction another server sent us (PUT /send/{txnId}), stored before it is
    acknowledged.

    Transactions are idempotent per (origin, txn_id): a retry is answered with the stored
    ``response`` and nothing of it is processed again. ``response`` is None only while
    the transaction is being taken in (or was cut short then: it is taken in again).
    """

    origin = models.CharField(max_length=255)
    txn_id = models.CharField(max_length=255)
    body = models.JSONField()
    received_ts = models.BigIntegerField()
    response = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["origin", "txn_id"], name="inbound_txn_unique")
        ]

    def __str__(self) -> str:
        return f"{self.origin} {self.txn_id}"


class InboundPdu(models.Model):
    """A PDU of an inbound transaction, queued for its room's pipeline (run by a worker,
    one room at a time). ``result`` is None until it has been through: then {} or
    {"error": ...}."""

    transaction = models.ForeignKey(
        InboundTransaction, on_delete=models.CASCADE, related_name="pdus"
    )
    origin = models.CharField(max_length=255)
    room_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    pdu = models.JSONField()
    result = models.JSONField(null=True, blank=True)
    processed_ts = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["room_id", "id"],
                condition=models.Q(processed_ts__isnull=True),
                name="inbound_pdu_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_id} from {self.origin}"


class InboundRoomLease(models.Model):
    """Who processes a room's inbound PDUs now: one worker per room at a time, until
    ``lease_until_ts`` (a worker that dies loses it then)."""

    room_id = models.CharField(max_length=255, unique=True)
    lease_token = models.CharField(max_length=64, null=True, blank=True)
    lease_until_ts = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.room_id


class Destination(models.Model):
    """Another server we send transactions to, and how sending to it goes.

    Its queue is the ``OutboundPDU`` and ``OutboundEDU`` rows that point at it. One run
    at a time sends to it: the one that holds the lease (``lease_token`` until
    ``lease_until_ts``); every write a run makes is conditional on still holding it.
    ``txn_id`` is the transaction in flight, whose items carry the same ID: it is sent
    again, unchanged, until the server answers 200 (spec: "The sending server must wait
    and retry for a 200 OK response before sending a transaction with a different
    txnId"). While it fails, ``retry_at_ts`` holds runs back (exponential backoff).
    """

    server_name = models.CharField(max_length=255, unique=True)
    # Failures in a row, since ``failing_since_ts``; both cleared by a success.
    failures = models.IntegerField(default=0)
    failing_since_ts = models.BigIntegerField(null=True, blank=True)
    retry_delay_ms = models.BigIntegerField(default=0)
    retry_at_ts = models.BigIntegerField(null=True, blank=True)
    last_success_ts = models.BigIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    lease_token = models.CharField(max_length=32, null=True, blank=True)
    lease_until_ts = models.BigIntegerField(null=True, blank=True)
    txn_id = models.CharField(max_length=64, null=True, blank=True)

    def __str__(self) -> str:
        return self.server_name


class OutboundPDU(models.Model):
    """A PDU queued for a destination, in queue order (``id``), until the destination
    acknowledged the transaction that carried it."""

    id = models.BigAutoField(primary_key=True)
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="pdus")
    room_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    pdu = models.JSONField()
    # The transaction it is in flight in (Destination.txn_id), or None while it waits.
    txn_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "event_id"], name="outbound_pdu_once")
        ]
        indexes = [models.Index(fields=["destination", "txn_id"], name="outbound_pdu_txn")]

    def __str__(self) -> str:
        return f"{self.event_id} to {self.destination_id}"


class OutboundEDU(models.Model):
    """An EDU queued for a destination, in queue order (``id``).

    A keyed EDU (``key`` not empty: a typing state per room and user, a receipt per room,
    user and thread) stands for the latest state of what its key names, so queuing
    another of the same type and key replaces it while it waits (not once in flight).
    """

    id = models.BigAutoField(primary_key=True)
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="edus")
    edu_type = models.CharField(max_length=255)
    content = models.JSONField()
    key = models.CharField(max_length=1024, blank=True, default="")
    txn_id = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["destination", "txn_id"], name="outbound_edu_txn")]

    def __str__(self) -> str:
        return f"{self.edu_type} to {self.destination_id}"
