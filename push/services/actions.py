"""The push rules on the send path (Push Notifications, "Server behaviour"): "When
receiving a new event homeservers process push rules for each of the local users in the
room (excluding the sender)".

``prepare_push_actions`` runs as a rooms hook inside the transaction that persists the
event, under the room lock, so an event and the counts it moves are committed together
("The updated notification count from a new event MUST appear in the same /sync
response as the event itself"). It evaluates before the event takes its stream position
(rooms.hooks), while other rooms' writers may commit; its finish writes, once the
position is known, one insert of PushAction rows and the sender's implicit receipt.
Its reads do not grow with the room: the members, their display names and the power
levels come from a per-state-group cache (:mod:`push.audience`), each user's compiled
rules from ``push.rules``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection

from accounts.clock import now_ms
from accounts.models import AccountData, User
from accounts.services.account_data import IGNORED_USER_LIST
from config.model_loading import table_name
from protocol.push.evaluator import PushEvent, notifies
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from push.audience import Audience, audience_at
from push.delivery import notify_new_actions
from push.models import ImplicitReceipt, PushAction
from push.rules import compiled_rules_for
from rooms import event_cache
from rooms.hooks import Finish, PersistingEvent
from rooms.relations import MAIN_THREAD, ignored_in, thread_root
from rooms.services.events import relation_of
from rooms.services.membership import is_local_user


def thread_of(persisted: PersistingEvent) -> str:
    """The thread an event is in (rooms.relations.thread_root, the rule receipts use),
    its parent read from the event cache."""

    def parent_relation(event_id: str) -> tuple[str | None, str | None] | None:
        parent = event_cache.get_events([event_id]).get(event_id)
        if parent is None or parent.room_id != persisted.room.room_id:
            return None
        relates_to, rel_type = relation_of(parent.content)
        return rel_type, relates_to

    return thread_root(persisted.rel_type, persisted.relates_to, parent_relation)


def _recipients(persisted: PersistingEvent, audience: Audience) -> list[str]:
    """The local users the event is evaluated for: every joined member but the sender,
    and a local user it invites (``.m.rule.invite_for_me``), who is not joined yet."""
    event = persisted.event
    users = [user_id for user_id in audience.local_members if user_id != event.sender]
    target = event.state_key
    invited = (
        event.type == "m.room.member"
        and event.membership == "invite"
        and target is not None
        and is_local_user(target)
        and target != event.sender
        and target not in audience.local_members
    )
    if invited and target is not None:
        users.append(target)
    return users


def _ignoring(user_ids: Sequence[str], sender: str) -> set[str]:
    """The users among ``user_ids`` who ignore ``sender`` (m.ignored_user_list): their
    clients never get the sender's events, so they are not notified of them (as Synapse
    does). One query, by the (user, room_id, type) index."""
    suffix = ":" + settings.SERVER_NAME
    localparts = {user_id[1 : -len(suffix)]: user_id for user_id in user_ids}
    data, users = table_name(AccountData), table_name(User)
    placeholders = ", ".join(["%s"] * len(localparts))
    sql = (
        f"SELECT u.localpart, d.content FROM {users} u JOIN {data} d ON d.user_id = u.id "
        f"AND d.room_id = '' AND d.type = %s WHERE u.localpart IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [IGNORED_USER_LIST, *localparts])
        rows = cursor.fetchall()
    return {
        localparts[localpart]
        for localpart, content in rows
        if sender in ignored_in(json.loads(content) if isinstance(content, str) else content)
    }


def _mark_read_by_sender(persisted: PersistingEvent, stream_ordering: int) -> None:
    """Sending an event reads the room up to it (models.ImplicitReceipt). One upsert."""
    table = table_name(ImplicitReceipt)
    sql = (
        f"INSERT INTO {table} (user_id, room_id, stream_ordering) VALUES (%s, %s, %s) "
        "ON CONFLICT (user_id, room_id) DO UPDATE SET stream_ordering = excluded.stream_ordering"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [persisted.event.sender, persisted.room.pk, stream_ordering])


def prepare_push_actions(persisted: PersistingEvent) -> Finish | None:
    """Evaluate the push rules of every local recipient of an event being persisted;
    return what writes, at the event's stream ordering, a PushAction row for each whose
    actions notify or highlight (and the sender's implicit receipt). Called inside the
    event's transaction, with the room lock held, before the event takes its position."""
    event = persisted.event
    sender_is_local = is_local_user(event.sender)
    verdicts = _verdicts(persisted)
    if not verdicts and not sender_is_local:
        return None
    thread_id = thread_of(persisted) if verdicts else MAIN_THREAD

    def finish(stream_ordering: int) -> None:
        if sender_is_local:
            _mark_read_by_sender(persisted, stream_ordering)
        if verdicts:
            _insert_push_actions(persisted, stream_ordering, thread_id, verdicts)
            # Their pushers deliver after commit (push.delivery); in-memory for the others.
            notified = [user_id for user_id, _, notify, _ in verdicts if notify]
            notify_new_actions(notified, stream_ordering)

    return finish


def _verdicts(persisted: PersistingEvent) -> list[tuple[str, list[Any], bool, bool]]:
    """(user, actions, notify, highlight) for each recipient whose actions notify or
    highlight."""
    event = persisted.event
    audience = audience_at(persisted.state_before)
    recipients = _recipients(persisted, audience)
    if not recipients:
        return []
    if event.state_key is None:
        # Ignoring Users: state events still reach the ignoring user; the rest do not.
        ignoring = _ignoring(recipients, event.sender)
        recipients = [user_id for user_id in recipients if user_id not in ignoring]
        if not recipients:
            return []
    room_version = KNOWN_ROOM_VERSIONS[persisted.room.room_version]
    push_event = PushEvent(
        event.pdu,
        room_member_count=audience.joined_count,
        sender_power_level=audience.sender_power_level(room_version, event.sender),
        notification_power_levels=audience.notification_levels,
    )
    rules = compiled_rules_for(recipients)
    names = audience.local_members
    verdicts = []
    for user_id in recipients:
        actions = rules[user_id].actions(push_event, user_id, names.get(user_id))
        if actions:
            notify, highlight = notifies(actions)
            if notify or highlight:
                verdicts.append((user_id, actions, notify, highlight))
    return verdicts


_ACTION_COLUMNS = (
    "user_id",
    "room_id",
    "event_id",
    "stream_ordering",
    "thread_id",
    "actions",
    "notify",
    "highlight",
    "ts",
)


def _insert_push_actions(
    persisted: PersistingEvent,
    stream_ordering: int,
    thread_id: str,
    verdicts: Sequence[tuple[str, list[Any], bool, bool]],
) -> None:
    """One INSERT of every recipient's PushAction row. Hand-written: building a model
    instance and preparing each field of each row through the ORM cost more than the
    rest of the send in a room of 100. Recipients mostly share one rule's actions list,
    so each distinct list is serialised once."""
    serialised: dict[int, str] = {}
    for _, actions, _, _ in verdicts:
        if id(actions) not in serialised:
            serialised[id(actions)] = json.dumps(actions)
    table = table_name(PushAction)
    columns = ", ".join(connection.ops.quote_name(c) for c in _ACTION_COLUMNS)
    shared = [persisted.room.pk, persisted.event.event_id, stream_ordering, thread_id]
    ts = now_ms()
    if connection.vendor == "postgresql":
        # The rows as four arrays: a short statement whatever the room's size, where a
        # VALUES list of 99 rows (891 parameters, bound client-side) took longer to
        # build and parse than to insert.
        sql = (
            f"INSERT INTO {table} ({columns}) "
            "SELECT t.u, %s, %s, %s, %s, t.a::jsonb, t.n, t.h, %s "
            "FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::boolean[]) AS t(u, a, n, h)"
        )
        params: list[Any] = [
            *shared,
            ts,
            [v[0] for v in verdicts],
            [serialised[id(v[1])] for v in verdicts],
            [v[2] for v in verdicts],
            [v[3] for v in verdicts],
        ]
    else:
        row = "(" + ", ".join(["%s"] * len(_ACTION_COLUMNS)) + ")"
        sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * len(verdicts))
        params = []
        for user_id, actions, notify, highlight in verdicts:
            params += [user_id, *shared, serialised[id(actions)], notify, highlight, ts]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
