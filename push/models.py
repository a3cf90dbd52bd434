"""Push notifications (Client-Server API, "Push Notifications").

- ``PushAction``: what the push rules decided for one local user and one event (Synapse's
  ``event_push_actions``): a row per (user, event) whose actions include ``notify`` or a
  highlight. The unread counts of /sync, GET /notifications and the pushers all read it.
- ``Pusher``: a push gateway (or, later, email) to which a user's notifications go, with
  how far delivery has got, so a worker that dies or a gateway that is down resumes
  where it stopped and sends each notification once.
"""

from __future__ import annotations

from django.db import models

from rooms.models import Room


class PushAction(models.Model):
    """The push rules' verdict for ``user_id`` on one event, written in the transaction that
    persists the event. ``thread_id`` is "main" or the thread root's event ID (threaded
    notification counts). Rows after the user's read receipt in the room (and thread) are
    unread."""

    user_id = models.CharField(max_length=255)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=255)
    stream_ordering = models.BigIntegerField()
    thread_id = models.CharField(max_length=255, default="main")
    actions = models.JSONField()
    notify = models.BooleanField(default=True)
    highlight = models.BooleanField(default=False)
    ts = models.BigIntegerField()

    class Meta:
        # No unique (user_id, event_id): an event is persisted once, so its rows are
        # written once, and on the send path that index (random event IDs under every
        # user) cost more than the rest of the insert (bench/push_send.sh).
        indexes = [
            # Unread counts: a user's rows in a room after a position.
            models.Index(
                fields=["user_id", "room", "stream_ordering"], name="push_action_user_room"
            ),
            # GET /notifications and the pushers: a user's rows in stream order.
            models.Index(fields=["user_id", "stream_ordering"], name="push_action_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.event_id}"


class Pusher(models.Model):
    """A pusher (POST /pushers/set): unique per (app_id, pushkey, user)."""

    user_id = models.CharField(max_length=255, db_index=True)
    # The access token's device that set it (a pusher goes when its device logs out).
    device_id = models.CharField(max_length=255, null=True, blank=True)
    kind = models.CharField(max_length=16)
    app_id = models.CharField(max_length=64)
    pushkey = models.CharField(max_length=512)
    app_display_name = models.CharField(max_length=255)
    device_display_name = models.CharField(max_length=255)
    profile_tag = models.CharField(max_length=255, null=True, blank=True)
    lang = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    # When the pusher was last set (the Push Gateway API's ``pushkey_ts``, in ms here).
    created_ts = models.BigIntegerField()
    # Delivery: PushAction rows up to this stream ordering have been handled.
    last_stream_ordering = models.BigIntegerField(default=0)
    last_success_ts = models.BigIntegerField(null=True, blank=True)
    failing_since_ts = models.BigIntegerField(null=True, blank=True)
    # Backoff while the gateway fails: no attempt before retry_at_ts; the next wait.
    retry_at_ts = models.BigIntegerField(null=True, blank=True)
    retry_delay_ms = models.BigIntegerField(default=0)
    # One delivery at a time per pusher: a worker holds the lease (its token) until
    # lease_until_ts, renewing it with every notification sent (push/delivery.py).
    lease_token = models.CharField(max_length=32, null=True, blank=True)
    lease_until_ts = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app_id", "pushkey", "user_id"], name="pusher_unique")
        ]
        indexes = [models.Index(fields=["app_id", "pushkey"], name="pusher_app_key")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.app_id}"


class PushRules(models.Model):
    """What one user changed of their push rules: their own rules per kind, in order, and
    the ``enabled`` flag or ``actions`` they set on server-default rules, as the *changes*
    document of ``protocol.push.rules``. A user who changed nothing has no row; their
    ruleset is the server-default one.

    ``stream_id`` is the account_data stream position of the last change (the same
    position as the user's ``m.push_rules`` account data, which /sync sends): the
    compiled-rules caches of every process compare it to know what changed.
    """

    user_id = models.CharField(max_length=255, unique=True)
    changes = models.JSONField(default=dict)
    stream_id = models.BigIntegerField(db_index=True)

    class Meta:
        verbose_name_plural = "push rules"

    def __str__(self) -> str:
        return f"push rules of {self.user_id}"


class ImplicitReceipt(models.Model):
    """The stream ordering of ``user_id``'s latest own event in a room: "When the user
    updates their read receipt (either by using the API or by sending an event),
    notifications prior to and including that event MUST be marked as read" (Push
    Notifications, "Marking notifications as read"). Clients do not send receipts for
    their own events, so sending one reads the room up to it, as an unthreaded receipt
    would. Written with the event; never sent to anyone."""

    user_id = models.CharField(max_length=255)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    stream_ordering = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "room"], name="implicit_receipt_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} sent at {self.stream_ordering} in {self.room_id}"
