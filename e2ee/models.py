"""End-to-end encryption support: send-to-device messages (Client-Server API,
"Send-to-Device messaging")."""

from __future__ import annotations

from django.db import models

from accounts.models import Device


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
