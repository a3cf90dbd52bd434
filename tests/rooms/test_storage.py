"""rooms/storage.py: one definition of "in the timeline", and every SQL statement against
its ORM twin on the same rows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Q

from config.model_loading import table_name
from rooms import storage
from rooms.models import Event, Membership, Room
from streams import positions
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, join, leave, send

_ids = itertools.count()


def insert(room: Room, **fields: Any) -> Event:
    """An m.room.message row of ``room`` with the given flags, straight into the table."""
    event_id = f"$row{next(_ids)}:{settings.SERVER_NAME}"
    values: dict[str, Any] = {
        "event_id": event_id,
        "room": room,
        "depth": 50,
        "type": "m.room.message",
        "sender": f"@someone:{settings.SERVER_NAME}",
        "origin_server_ts": 1,
        "pdu": {"event_id": event_id, "type": "m.room.message", "content": {"body": "x"}},
        "state_group_id": room.current_state_group_id,
        **fields,
    }
    if "stream_ordering" not in fields:
        values["stream_ordering"] = positions.next_position(positions.EVENTS)
    return Event.objects.create(**values)


def reply(parent: str, rel_type: str) -> dict[str, Any]:
    return {"body": "r", "m.relates_to": {"rel_type": rel_type, "event_id": parent}}


# -- "visible in a timeline" -----------------------------------------------------------


@pytest.mark.graph_unchecked  # rows written by hand, out of any graph
def test_the_query_the_sql_and_the_predicate_agree_on_every_combination_of_flags(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = Room.objects.get(room_id=create_room(api, alice))
    made = []
    for outlier, rejected, soft_failed, positioned in itertools.product([False, True], repeat=4):
        made.append(
            insert(
                room,
                outlier=outlier,
                rejected_reason="auth" if rejected else None,
                soft_failed=soft_failed,
                stream_ordering=positions.next_position(positions.EVENTS) if positioned else None,
            )
        )
    ids = [row.event_id for row in made]

    by_query = set(
        Event.objects.filter(storage.in_timeline_q(), event_id__in=ids).values_list(
            "event_id", flat=True
        )
    )
    events = table_name(Event)
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.event_id FROM {events} e "
            f"WHERE e.event_id IN ({marks}) AND {storage.in_timeline_sql('e')}",
            ids,
        )
        by_sql = {row[0] for row in cursor.fetchall()}
    rows = Event.objects.filter(event_id__in=ids)
    by_predicate = {row.event_id for row in rows if storage.in_timeline(row)}

    # Of the 16 combinations, one is in the timeline: positioned and no flag set.
    plain = next(
        row.event_id
        for row in made
        if row.stream_ordering is not None
        and not (row.outlier or row.rejected_reason or row.soft_failed)
    )
    assert by_query == by_sql == by_predicate == {plain}


@pytest.mark.parametrize(
    "flags",
    [
        {"outlier": True, "stream_ordering": None},
        {"rejected_reason": "auth"},
        {"soft_failed": True},
    ],
    ids=["outlier", "rejected", "soft-failed"],
)
@pytest.mark.graph_unchecked  # rows written by hand, out of any graph
def test_get_event_does_not_answer_an_event_out_of_the_timeline(
    api: MatrixTestClient, alice: Persona, flags: dict[str, Any]
) -> None:
    room_id = create_room(api, alice)
    room = Room.objects.get(room_id=room_id)
    hidden = insert(room, sender=alice.user_id, **flags)
    shown = insert(room, sender=alice.user_id)

    def status(event_id: str) -> int:
        return api.get(f"rooms/{room_id}/event/{event_id}", token=alice.access_token).status

    assert status(shown.event_id) == 200
    assert status(hidden.event_id) == 404


# -- timeline batches ------------------------------------------------------------------


@pytest.fixture
def busy_room(api: MatrixTestClient, alice: Persona, bob: Persona) -> Room:
    """Messages from alice and bob, one of them with a thread reply, a state event from
    bob, and rows out of the timeline (rejected, soft-failed, an outlier) and backfilled
    ones (negative stream orderings, low depths)."""
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    first = send(api, alice, room_id, "one")
    send(api, bob, room_id, "two")
    send(api, alice, room_id, reply(first, "m.thread"))
    api.put(f"rooms/{room_id}/state/m.room.topic", {"topic": "t"}, token=bob.access_token)
    room = Room.objects.get(room_id=room_id)
    insert(room, rejected_reason="auth")
    insert(room, soft_failed=True)
    insert(room, outlier=True, stream_ordering=None)
    for depth in (1, 2):
        insert(room, depth=depth, stream_ordering=positions.next_backfill_position())
    return room


def both(room: Room, **kwargs: Any) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    args = (
        room,
        kwargs["order"],
        kwargs.get("conditions", Q()),
        kwargs.get("ignored", frozenset()),
        kwargs.get("after"),
        kwargs.get("upto"),
        kwargs["newest_first"],
        kwargs.get("count", 100),
    )

    def shape(rows: list[Event]) -> list[tuple[str, bool]]:
        return [(row.event_id, row.has_children) for row in rows]  # type: ignore[attr-defined]

    return shape(storage.timeline_batch_sql(*args)), shape(storage.timeline_batch_orm(*args))


@pytest.mark.parametrize("order", [storage.STREAM, storage.TOPOLOGICAL], ids=["stream", "topo"])
@pytest.mark.parametrize("newest_first", [True, False], ids=["newest", "oldest"])
def test_a_timeline_batch_is_the_same_in_sql_and_through_the_orm(
    busy_room: Room, bob: Persona, order: storage.Order, newest_first: bool
) -> None:
    rows = list(
        Event.objects.filter(storage.in_timeline_q(), room=busy_room).order_by(
            *storage.order_by(order, newest_first=False)
        )
    )
    middle = storage.position_of(rows[len(rows) // 2], order)
    late = storage.position_of(rows[-2], order)
    cases: list[dict[str, Any]] = [
        {},
        {"count": 3},
        {"after": middle},
        {"upto": middle},
        {"after": middle, "upto": late},
        {"ignored": frozenset({bob.user_id})},
    ]
    for case in cases:
        sql, orm = both(busy_room, order=order, newest_first=newest_first, **case)
        assert sql == orm, case
        assert sql, case

    whole, _ = both(busy_room, order=order, newest_first=newest_first)
    expected = rows[::-1] if newest_first else rows
    assert [event_id for event_id, _ in whole] == [row.event_id for row in expected]
    assert sum(flag for _, flag in whole) == 1


def test_topological_order_puts_backfilled_rows_by_depth(busy_room: Room) -> None:
    oldest = storage.timeline_batch_sql(
        busy_room, storage.TOPOLOGICAL, Q(), frozenset(), None, None, False, 3
    )

    assert [(row.depth, (row.stream_ordering or 0) < 0) for row in oldest] == [
        (1, True),
        (1, False),
        (2, True),
    ]


# -- relationship groups ---------------------------------------------------------------


def test_child_groups_are_the_same_in_sql_and_through_the_orm(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    root = send(api, alice, room_id, "root")
    other = send(api, alice, room_id, "other")
    for who in (alice, bob, bob):
        send(api, who, room_id, reply(root, "m.thread"))
    send(api, alice, room_id, reply(other, "m.reference"))
    edit = {
        "body": "* e",
        "m.new_content": {"body": "e"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": other},
    }
    send(api, alice, room_id, edit)
    room = Room.objects.get(room_id=room_id)
    insert(room, relates_to=root, rel_type="m.thread", soft_failed=True)

    kinds = storage.BUNDLED_REL_TYPES
    for ignored in (frozenset(), frozenset({bob.user_id})):
        for viewer in (alice.user_id, bob.user_id):
            sql = sorted(storage.child_groups([root, other], kinds, ignored, viewer))
            orm = sorted(storage.child_groups_orm([root, other], kinds, ignored, viewer))
            assert sql == orm
    groups = {
        (parent, kind): (count, mine)
        for parent, kind, _, count, _, mine in storage.child_groups(
            [root, other], kinds, frozenset(), bob.user_id
        )
    }
    assert groups == {
        (root, "m.thread"): (3, 2),
        (other, "m.reference"): (1, 0),
        (other, "m.replace"): (1, 0),
    }


# -- a reader of history ---------------------------------------------------------------


def test_room_for_reader_is_the_same_in_sql_and_through_the_orm(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    from accounts.models import User

    room_id = create_room(api, alice, preset="public_chat")
    api.put(
        f"user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
        token=alice.access_token,
    )
    join(api, bob, room_id)
    leave(api, bob, room_id)
    Membership.objects.filter(user_id=bob.user_id).update(forgotten=True)

    for persona in (alice, bob):
        user = User.objects.get(localpart=persona.localpart)
        for wanted in (room_id, f"!unknown:{settings.SERVER_NAME}"):
            sql = storage.room_for_reader(wanted, persona.user_id, user.pk)
            orm = storage.room_for_reader_orm(wanted, persona.user_id, user.pk)
            assert sql == orm
    alice_user = User.objects.get(localpart="alice")
    bob_user = User.objects.get(localpart="bob")
    seen_by_alice = storage.room_for_reader(room_id, alice.user_id, alice_user.pk)
    seen_by_bob = storage.room_for_reader(room_id, bob.user_id, bob_user.pk)
    assert seen_by_alice is not None
    assert seen_by_bob is not None
    assert (seen_by_alice.member, seen_by_alice.ignore_list) == (
        True,
        {"ignored_users": {bob.user_id: {}}},
    )
    assert (seen_by_bob.member, seen_by_bob.ignore_list) == (False, None)


# -- search ----------------------------------------------------------------------------


def search_shape(page: storage.SearchPage) -> tuple[list[tuple[str, float, str]], int | None]:
    return [(row.event_id, rank, value) for row, rank, value in page.rows], page.total


@pytest.mark.graph_unchecked  # rows written by hand, out of any graph
def test_a_search_page_is_the_same_in_sql_and_through_the_orm(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    from rooms.models import EventSearch
    from rooms.selectors import event_filter_q

    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    other_id = create_room(api, bob, preset="public_chat")
    # Equal ranks (the same words, as long) and different ones, from both senders, in
    # two rooms; a topic and a name that match too.
    for n in range(4):
        send(api, alice, room_id, "tern colony")
        send(api, bob, room_id, f"tern {'tern ' * n}seen at the shore")
        send(api, bob, other_id, "tern colony")
    api.put(f"rooms/{room_id}/state/m.room.topic", {"topic": "terns"}, token=alice.access_token)
    api.put(f"rooms/{other_id}/state/m.room.name", {"name": "Tern"}, token=bob.access_token)
    redacted = send(api, alice, room_id, "tern colony")
    room = Room.objects.get(room_id=room_id)
    other = Room.objects.get(room_id=other_id)
    # Rows the index would never hold (search_index writes visible timeline events
    # only, and forgets redacted ones), indexed by hand: the statement must leave them
    # out by itself.
    out_of_timeline = [
        insert(room, rejected_reason="auth"),
        insert(room, soft_failed=True),
        insert(room, outlier=True, stream_ordering=None),
        Event.objects.get(event_id=redacted),
    ]
    Event.objects.filter(event_id=redacted).update(redacted_by="$r")
    for row in out_of_timeline:
        EventSearch.objects.get_or_create(
            event=row, key="content.body", defaults={"room": room, "value": "tern colony"}
        )
    # A backfilled message: a negative stream ordering.
    backfilled = insert(room, stream_ordering=positions.next_backfill_position())
    EventSearch.objects.create(event=backfilled, room=room, key="content.body", value="tern")

    def query(**fields: Any) -> storage.SearchQuery:
        values: dict[str, Any] = {
            "words": ("tern",),
            "room_pks": (room.pk, other.pk),
            "keys": ("content.body", "content.name", "content.topic"),
            "conditions": Q(),
            "ignored": frozenset(),
            **fields,
        }
        return storage.SearchQuery(**values)

    queries = [
        query(),
        query(words=("ter",)),
        query(words=("tern", "colony")),
        query(words=("absent",)),
        query(room_pks=(other.pk,)),
        query(keys=("content.body",)),
        query(conditions=event_filter_q({"senders": [bob.user_id]})),
        query(conditions=event_filter_q({"not_types": ["m.room.t*"]})),
        query(conditions=event_filter_q({"types": ["m.*.name", "m.room.message"]})),
        query(conditions=event_filter_q({"types": []})),
        query(ignored=frozenset({bob.user_id})),
    ]
    for search in queries:
        for by_rank in (True, False):
            # Page through everything two at a time, as search.py does, from each
            # page's last row.
            after: storage.SearchPosition | None = None
            pages = 0
            while True:
                kwargs = {"by_rank": by_rank, "after": after, "count": 2, "with_total": True}
                sql = storage.search_page(search, **kwargs)  # type: ignore[arg-type]
                orm = storage.search_page_orm(search, **kwargs)  # type: ignore[arg-type]
                assert search_shape(sql) == search_shape(orm), (search, by_rank, after)
                pages += 1
                if len(sql.rows) < 2:
                    break
                last, rank, _value = sql.rows[-1]
                assert last.stream_ordering is not None
                after = (rank, last.stream_ordering) if by_rank else (last.stream_ordering,)
            without_total = storage.search_page(search, by_rank=by_rank, after=None, count=2)
            assert without_total.total is None
            with_total = storage.search_page(
                search, by_rank=by_rank, after=None, count=2, with_total=True
            )
            assert without_total.rows == with_total.rows

    everything = storage.search_page(queries[0], by_rank=True, after=None, count=100)
    found = {row.event_id for row, _rank, _value in everything.rows}
    assert len(found) == 4 * 3 + 2 + 1
    assert backfilled.event_id in found
    assert not found & {row.event_id for row in out_of_timeline}
    ranks = [rank for _row, rank, _value in everything.rows]
    assert ranks == sorted(ranks, reverse=True)
    assert len(set(ranks)) < len(ranks)  # ties, broken by stream order
    total = storage.search_page(queries[0], by_rank=False, after=None, count=1, with_total=True)
    assert total.total == len(found)


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] == "config.sqlite", reason="a PostgreSQL index"
)
@pytest.mark.django_db
def test_the_search_gin_index_has_no_pending_list() -> None:
    # Migration 0015: every search would read the whole pending list besides the index.
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'event_search_vector'")
        assert cursor.fetchone()[0] == ["fastupdate=off"]
