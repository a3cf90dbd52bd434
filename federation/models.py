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
    ``response`` and never processed again. ``response`` is None while the transaction
    is not yet fully processed (or its processing was cut short: it is then processed
    again, which is safe, every step of the PDU pipeline being idempotent).
    """

    origin = models.CharField(max_length=255)
    txn_id = models.CharField(max_length=255)
    body = models.JSONField()
    received_ts = models.BigIntegerField()
    response = models.JSONField(null=True, blank=True)
    processed_ts = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["origin", "txn_id"], name="inbound_txn_unique")
        ]

    def __str__(self) -> str:
        return f"{self.origin} {self.txn_id}"
