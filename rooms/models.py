"""Rooms as a DAG of signed events, with state stored as shared snapshots and deltas.

- ``Event`` holds each PDU whole plus the indexed columns the hot paths read; its
  ``stream_ordering`` is the global order in which this server persisted events (sync
  and /messages tokens), ``depth`` the topological order.
- ``StateGroup`` is an immutable state map, stored as a delta (``StateGroupEntry`` rows)
  on top of ``prev_group``; a chain is cut by a full snapshot every
  ``MAX_STATE_DELTA_CHAIN`` groups. Every event points at the group of the state
  *after* it, so consecutive messages share one group and a state event adds one row.
- ``CurrentState`` and ``Membership`` are the resolved current state and its membership
  view, for fast reads.
"""

from __future__ import annotations

from django.db import models

from config.model_loading import FastLoadModel

# A state group's delta chain is cut with a full snapshot after this many links.
MAX_STATE_DELTA_CHAIN = 50


class Room(FastLoadModel):
    room_id = models.CharField(max_length=255, unique=True)
    room_version = models.CharField(max_length=32)
    creator = models.CharField(max_length=255)
    # Published in this server's room directory (/publicRooms).
    is_public = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # The state group of the room's current state (after the forward extremities).
    current_state_group = models.ForeignKey(
        "StateGroup", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Joined through another server with partial state (``PartialStateRoom``): the member
    # events it left out are still being fetched. Read with the room row, so that the
    # local send path needs no query of its own to know.
    partial_state = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.room_id


class PartialStateRoom(models.Model):
    """A room joined with partial state (send_join with ``omit_members``): the resident
    server left the member events out of the state before the join. Until the whole state
    is fetched (rooms.services.partial_state) the room's inbound PDUs wait in their
    queue, and local events and the member list wait for it. Stored with the join, so a
    restart resumes the fetch."""

    room = models.OneToOneField(Room, on_delete=models.CASCADE, related_name="+")
    # The join whose state before it was partial.
    join_event_id = models.CharField(max_length=255)
    # The server that answered the join, then those it said were in the room.
    servers = models.JSONField(default=list)
    joined_ts = models.BigIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"partial state since {self.join_event_id}"


class StateGroup(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="state_groups")
    prev_group = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Number of deltas between this group and its snapshot (0: this is a snapshot).
    chain_length = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"state group {self.pk}"


class StateGroupEntry(models.Model):
    state_group = models.ForeignKey(StateGroup, on_delete=models.CASCADE, related_name="entries")
    type = models.CharField(max_length=255)
    state_key = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["state_group", "type", "state_key"], name="state_group_entry_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}/{self.state_key} in group {self.state_group_id}"


class Event(FastLoadModel):
    event_id = models.CharField(max_length=255, unique=True)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    # Global persistence order; None for outliers (known, but not in the timeline).
    stream_ordering = models.BigIntegerField(unique=True, null=True, blank=True)
    depth = models.BigIntegerField()
    type = models.CharField(max_length=255)
    state_key = models.CharField(max_length=255, null=True, blank=True)
    sender = models.CharField(max_length=255)
    origin_server_ts = models.BigIntegerField()
    # The canonical PDU as received or built (federation format).
    pdu = models.JSONField()
    # State after this event.
    state_group = models.ForeignKey(
        StateGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # For state events: the event this one replaced in the state (for prev_content).
    replaces_state = models.CharField(max_length=255, null=True, blank=True)
    # For m.room.member events: the membership, for membership history queries.
    membership = models.CharField(max_length=32, null=True, blank=True)
    outlier = models.BooleanField(default=False)
    rejected_reason = models.CharField(max_length=255, null=True, blank=True)
    soft_failed = models.BooleanField(default=False)
    # Set on an event once a valid redaction of it is persisted.
    redacted_by = models.CharField(max_length=255, null=True, blank=True)
    # For redactions: the event this one redacts.
    redacts = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    # m.relates_to of the content, for /relations, threads and bundled aggregations.
    relates_to = models.CharField(max_length=255, null=True, blank=True)
    rel_type = models.CharField(max_length=255, null=True, blank=True)
    # Who sent it from this server, with which transaction ID (unsigned.transaction_id).
    sender_device_id = models.CharField(max_length=255, null=True, blank=True)
    txn_id = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["room", "stream_ordering"], name="event_room_stream"),
            # Topological order, (depth, stream_ordering): /messages, /context, /relations.
            models.Index(
                fields=["room", "depth", "stream_ordering"], name="event_room_topological"
            ),
            models.Index(fields=["room", "type", "state_key"], name="event_room_state"),
            models.Index(fields=["relates_to", "rel_type"], name="event_relation"),
            models.Index(fields=["room", "origin_server_ts"], name="event_room_ts"),
        ]
        constraints = [
            # "Transaction identifiers": a retransmission is the same transaction ID from
            # the same device on the same path (room and event type).
            models.UniqueConstraint(
                fields=["room", "type", "sender", "sender_device_id", "txn_id"],
                condition=models.Q(txn_id__isnull=False),
                name="event_txn_unique_per_path",
            )
        ]

    def __str__(self) -> str:
        return self.event_id


class EventSearch(models.Model):
    """A searchable value of a timeline event (Client-Server API, "Server Side Search"):
    ``content.body`` of an m.room.message, ``content.name`` of an m.room.name,
    ``content.topic`` of an m.room.topic. Written as the event is persisted
    (rooms.services.search_index), deleted when the event is redacted.

    The full-text index over ``value`` is the database's own, created by migration
    0011: on PostgreSQL a GIN index on ``to_tsvector('english', value)``, on SQLite the
    FTS5 table ``rooms_eventsearch_fts``, kept by triggers on this table (a migration
    that rebuilds this table on SQLite must create them again).
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    # "content.body", "content.name" or "content.topic", as the request's ``keys`` say.
    key = models.CharField(max_length=32)
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "key"], name="event_search_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} of {self.event_id}"


class RoomStateChange(models.Model):
    """A change of a room's current state: from stream position ``stream_ordering`` on,
    the current state is ``state_group``.

    Usually the state after the event persisted at that position; ``resolved`` is set when
    it is not (the forward extremities' states were resolved, and a fork's state won), so
    that /sync sends the difference rather than trusting the timeline to carry it. The
    state "at" a position is the group of the last change at or before it, and the
    table grows with state changes, not with messages.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    stream_ordering = models.BigIntegerField()
    state_group = models.ForeignKey(StateGroup, on_delete=models.PROTECT, related_name="+")
    resolved = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "stream_ordering"], name="room_state_change_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["stream_ordering"],
                condition=models.Q(resolved=True),
                name="room_state_change_resolved",
            )
        ]

    def __str__(self) -> str:
        return f"{self.room_id} at {self.stream_ordering}: group {self.state_group_id}"


class EventEdge(models.Model):
    """A prev_events edge: ``event`` follows ``prev_event_id`` in the DAG."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="prev_edges")
    prev_event_id = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.prev_event_id}"


class EventAuthEdge(models.Model):
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="auth_edges")
    auth_event_id = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return f"{self.event_id} auth {self.auth_event_id}"


class ForwardExtremity(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="forward_extremities")
    event_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "event_id"], name="forward_extremity_unique")
        ]

    def __str__(self) -> str:
        return self.event_id


class BackwardExtremity(models.Model):
    """A prev event that the room's graph here cites but does not hold: where its
    known history stops (Synapse's backward extremities). Backfill (GET /backfill)
    asks another server to go on from it (rooms.services.backfill); it is gone once the
    event is in the graph here.

    The rows are kept as events are persisted (rooms.services.graph), so that /messages
    finds the gaps near the page it reads with one indexed query, never a walk of the
    room's graph.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=255)
    # The depth of the deepest event here citing it: paging backwards below that depth
    # passes the gap.
    depth = models.BigIntegerField()
    # Backfill asked for it and it is still missing: how often, and when to ask again.
    failed_attempts = models.PositiveIntegerField(default=0)
    retry_at_ts = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "event_id"], name="backward_extremity_unique")
        ]
        indexes = [models.Index(fields=["room", "depth"], name="backward_extremity_depth")]

    def __str__(self) -> str:
        return self.event_id


class CurrentState(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="current_state")
    type = models.CharField(max_length=255)
    state_key = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "type", "state_key"], name="current_state_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}/{self.state_key} = {self.event_id}"


class Membership(FastLoadModel):
    """Current membership of each user in each room (the m.room.member current state)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user_id = models.CharField(max_length=255)
    membership = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    stream_ordering = models.BigIntegerField()
    # Set by POST /forget after leaving; any later membership change clears it.
    forgotten = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user_id"], name="membership_unique")
        ]
        indexes = [
            models.Index(fields=["user_id", "membership"], name="membership_user"),
            models.Index(fields=["room", "membership"], name="membership_room"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.membership} {self.room_id}"


class OutOfBandMembership(models.Model):
    """A local user's membership in a room this server is not in: an invite received over
    federation (PUT /invite), its rejection, a knock sent through another server, its
    rescinding. The event is stored as an outlier with a stream position (rooms.storage,
    "out-of-band memberships") and the user's ``Membership`` row points at it; this row
    keeps what the other server told about the room, which the room's state here cannot.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=255, unique=True)
    user_id = models.CharField(max_length=255)
    # The invite_room_state / knock_room_state the other server gave, as stripped state
    # events (type, state_key, sender, content): /sync's invite_state and knock_state.
    stripped_state = models.JSONField(default=list)
    # Servers in the room, in the order they are asked to make_leave (rejecting an
    # invite, rescinding a knock): the inviter's, those the knock went through, ...
    servers = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"{self.user_id} out of band in {self.room_id}"


class RoomAlias(models.Model):
    alias = models.CharField(max_length=255, unique=True)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="aliases")
    creator = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "room aliases"

    def __str__(self) -> str:
        return self.alias


class EventReport(models.Model):
    """A user's report of an event, a room or a user to the server's moderators."""

    room_id = models.CharField(max_length=255, blank=True, default="")
    event_id = models.CharField(max_length=255, blank=True, default="")
    # The reported user, for a report of a user (POST /users/{userId}/report).
    user_id = models.CharField(max_length=255, blank=True, default="")
    reporter = models.CharField(max_length=255)
    reason = models.TextField(blank=True, default="")
    score = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"report by {self.reporter} on {self.event_id or self.room_id or self.user_id}"


class Typing(models.Model):
    """Who is typing where (Client-Server API, "Typing Notifications").

    One row per (room, user) that ever typed, kept so that a stop moves the ``typing``
    stream too. A user is typing while ``expires_at_ms`` is in the future; a stopped or
    swept row has ``expires_at_ms == 0``. ``stream_id`` is the position of the last
    change of the room's typing set that this row made.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    expires_at_ms = models.BigIntegerField(default=0)
    stream_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user_id"], name="typing_unique")]
        indexes = [
            models.Index(fields=["room", "stream_id"], name="typing_room_stream"),
            models.Index(fields=["room", "expires_at_ms"], name="typing_room_expiry"),
            models.Index(fields=["expires_at_ms"], name="typing_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} typing in {self.room_id}"


class Receipt(models.Model):
    """A user's latest receipt of one type in a room, per thread ("Receipts").

    ``thread_id`` is "" for an unthreaded receipt, "main" or a thread root's event ID
    otherwise. ``event_stream_ordering`` is the acknowledged event's, so that a receipt
    only moves forwards; ``stream_id`` is the position on the ``receipts`` stream.
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=255)
    receipt_type = models.CharField(max_length=64)
    thread_id = models.CharField(max_length=255, blank=True, default="")
    event_id = models.CharField(max_length=255)
    event_stream_ordering = models.BigIntegerField()
    ts = models.BigIntegerField()
    stream_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["room", "user_id", "receipt_type", "thread_id"], name="receipt_unique"
            )
        ]
        indexes = [models.Index(fields=["room", "stream_id"], name="receipt_room_stream")]

    def __str__(self) -> str:
        return f"{self.receipt_type} of {self.user_id} at {self.event_id}"


class BlockedRoom(models.Model):
    """A room local users may not join, be invited to or knock on (Synapse's blocked
    rooms). A room ID may be blocked before this server knows the room."""

    room_id = models.CharField(max_length=255, unique=True)
    # The server admin who blocked it.
    blocked_by = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.room_id} (blocked)"


class UserDirectoryEntry(models.Model):
    """A user as the user directory finds them (Client-Server API, "User directory"):
    display name and avatar, and the casefolded words a search matches by prefix.

    Local users' come from their profile, remote users' from their latest join event
    (rooms.services.user_directory). Who may see a user is not stored here: it is read
    from the memberships at search time (rooms.selectors_user_directory).
    """

    user_id = models.CharField(max_length=255, unique=True)
    display_name = models.TextField(null=True, blank=True)
    avatar_url = models.TextField(null=True, blank=True)
    # " word word ...": the words of the user ID and the display name, casefolded, each
    # after a space, so that a word prefix is a LIKE '% prefix%'.
    search_words = models.TextField()
    # Casefolded display name ("" without one) and localpart: exact and prefix matches
    # rank first.
    display_name_key = models.TextField(default="", blank=True)
    localpart_key = models.CharField(max_length=255)

    class Meta:
        verbose_name_plural = "user directory entries"

    def __str__(self) -> str:
        return self.user_id


class UserDirectoryPublicRoom(models.Model):
    """A room whose joined members anyone here may find in the user directory: its join
    rule is ``public`` or its history is ``world_readable``, and a local user is in it
    (once this server has left, its view of the room is frozen and not shown)."""

    room = models.OneToOneField(Room, on_delete=models.CASCADE, primary_key=True, related_name="+")

    def __str__(self) -> str:
        return f"{self.room_id} (public to the user directory)"
