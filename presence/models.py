"""Presence (Client-Server API, "Presence"): one row per user whose presence was set."""

from __future__ import annotations

from django.db import models

ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)


class Presence(models.Model):
    """The presence a user last set (PUT /presence or /sync's ``set_presence``).

    ``last_active_ago`` and ``currently_active`` are derived from ``last_active_ts``
    when read (presence.selectors), so the row changes only when something a client can
    see changes, or at most once a minute while a client keeps syncing. Users of other
    servers have rows too, written from the m.presence EDUs their servers send.
    """

    user_id = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=16, choices=[(s, s) for s in STATES], default=OFFLINE)
    status_msg = models.TextField(null=True, blank=True)
    # Epoch milliseconds of the last pro-active action seen.
    last_active_ts = models.BigIntegerField(default=0)
    # Position on the presence stream of the last change others should hear about.
    stream_id = models.BigIntegerField(default=0, db_index=True)
    # A user of another server: ``currently_active`` as their server said (their
    # server judges their idleness, and sends a change); None for local users, whose
    # is derived from ``last_active_ts``.
    currently_active = models.BooleanField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.state}"
