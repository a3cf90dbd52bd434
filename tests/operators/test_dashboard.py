"""The admin portal's front page (operators/dashboard.py, config/admin_site.py index):
figures of the whole server, each from one aggregate query whatever the data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import Client

from accounts.models import Device, User
from federation.models import Destination, OutboundEDU, OutboundPDU
from media.models import RemoteMedia
from operators import dashboard
from rooms.models import Event, Room
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, send

DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "media": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


def upload(api: MatrixTestClient, who: Persona, data: bytes) -> str:
    response = api.request(
        "POST",
        "/_matrix/media/v3/upload",
        raw=data,
        content_type="application/octet-stream",
        token=who.access_token,
    )
    assert response.status == 200, response.body
    return str(response.body["content_uri"])


def seen(persona: Persona, days_ago: float) -> None:
    at = int(time.time() * 1000 - days_ago * DAY_MS)
    Device.objects.filter(user__localpart=persona.localpart).update(last_seen_ts=at)


def queue_federation() -> None:
    """Two servers with PDUs and an EDU waiting, one of them failing; one with nothing."""
    busy = Destination.objects.create(server_name="busy.example", failures=3)
    other = Destination.objects.create(server_name="other.example")
    Destination.objects.create(server_name="idle.example")
    for n in range(3):
        OutboundPDU.objects.create(destination=busy, room_id="!r:x", event_id=f"$e{n}", pdu={})
    OutboundPDU.objects.create(destination=other, room_id="!r:x", event_id="$e9", pdu={})
    OutboundEDU.objects.create(destination=other, edu_type="m.typing", content={})


def test_the_figures_of_a_busy_server(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    carol = api.register("carol")
    dave = api.register("dave")
    room = create_room(api, alice)
    create_room(api, bob)
    before = Event.objects.filter(outlier=False).count()
    for n in range(5):
        send(api, alice, room, f"message {n}")
    # Three of the messages were sent three hours ago, as far as their timestamps say.
    three_hours_ago = int(time.time() * 1000) - 3 * 3600 * 1000
    old = list(Event.objects.filter(type="m.room.message").values_list("pk", flat=True)[:3])
    Event.objects.filter(pk__in=old).update(origin_server_ts=three_hours_ago)
    upload(api, alice, b"x" * 1000)
    upload(api, bob, b"y" * 500)
    RemoteMedia.objects.create(
        origin="other.example",
        media_id="abc",
        file_id="f1",
        size=2048,
        storage_name="remote/f1",
        created_ts=1,
        claimed_ts=1,
        fetched_ts=2,
    )
    # Still being fetched: not in the cache yet.
    RemoteMedia.objects.create(
        origin="other.example", media_id="def", file_id="f2", created_ts=1, claimed_ts=1
    )
    queue_federation()
    seen(bob, days_ago=10)
    seen(carol, days_ago=40)
    User.objects.filter(localpart="dave").update(is_active=False)
    Device.objects.filter(user__localpart=dave.localpart).update(last_seen_ts=None)

    board = dashboard.dashboard()

    assert board.users == dashboard.UserCounts(total=4, deactivated=1, active_24h=1, active_30d=2)
    assert board.rooms == 2
    assert board.events_24h == before + 5
    assert len(board.events_per_hour) == 24
    assert board.events_per_hour[-4].events == 3
    assert board.events_per_hour[-1].events == before + 2
    assert board.media == dashboard.MediaUsage(
        local_count=2, local_bytes=1500, remote_count=1, remote_bytes=2048
    )
    assert board.federation == dashboard.FederationQueue(
        pdus=4, edus=1, destinations_waiting=2, destinations_failing=1
    )


@pytest.mark.graph_unchecked  # the room's create event is made an outlier
def test_events_outside_the_window_and_outliers_are_not_counted(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    send(api, alice, room, "now")
    Event.objects.filter(type="m.room.message").update(
        origin_server_ts=int(time.time() * 1000) - 2 * DAY_MS
    )
    Event.objects.filter(type="m.room.create").update(outlier=True)
    counted = Event.objects.filter(outlier=False).exclude(type="m.room.message").count()

    assert dashboard.dashboard().events_24h == counted


@pytest.mark.django_db
def test_the_hours_are_whole_utc_hours_ending_with_the_current_one() -> None:
    at = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC

    hours = dashboard.events_per_hour(at)

    assert [h.start.hour for h in hours[-2:]] == [21, 22]
    assert hours[0].start.hour == 23
    assert (
        (hours[-1].start.timestamp() * 1000)
        <= at
        < hours[-1].start.timestamp() * 1000 + (3600 * 1000)
    )


def test_the_query_count_does_not_grow_with_the_data(
    api: MatrixTestClient, alice: Persona, django_assert_num_queries: Any
) -> None:
    # One query per figure; PostgreSQL's database size is one more (SQLite's is a file).
    queries = 11 + (connection.vendor == "postgresql")
    with mock.patch.object(dashboard, "worker_health", return_value=dashboard.WorkerHealth()):
        with django_assert_num_queries(queries):
            dashboard.dashboard()
        for n in range(3):
            room = create_room(api, api.register(f"user{n}"))
            send(api, alice, room, "hi", expect=403)
            upload(api, alice, b"z" * (n + 1))
        queue_federation()
        with django_assert_num_queries(queries):
            dashboard.dashboard()


@pytest.fixture
def with_workers() -> Iterator[None]:
    """Tasks go to workers through the broker, as outside the tests."""
    from config.celery import app

    app.conf.task_always_eager = False
    try:
        yield
    finally:
        app.conf.task_always_eager = True


@pytest.mark.usefixtures("with_workers")
def test_worker_health_pings_the_workers() -> None:
    from config.celery import app

    replies = [{"celery@a": {"ok": "pong"}}, {"celery@b": {"ok": "pong"}}]
    with mock.patch.object(app.control, "ping", return_value=replies) as ping:
        health = dashboard.worker_health(timeout_s=0.5)

    ping.assert_called_once_with(timeout=0.5)
    assert health.healthy
    assert health.workers == ["celery@a", "celery@b"]


@pytest.mark.usefixtures("with_workers")
def test_no_answer_or_no_broker_is_unhealthy() -> None:
    from config.celery import app

    with mock.patch.object(app.control, "ping", return_value=[]):
        assert not dashboard.worker_health().healthy
    with mock.patch.object(app.control, "ping", side_effect=ConnectionError("refused")):
        health = dashboard.worker_health()
    assert not health.healthy
    assert health.error == "ConnectionError: refused"


def test_in_eager_mode_there_is_no_worker_to_ping() -> None:
    from config.celery import app

    with mock.patch.object(app.control, "ping") as ping:
        health = dashboard.worker_health()

    ping.assert_not_called()
    assert health.eager
    assert health.healthy


@pytest.mark.django_db
def test_the_database_size_of_a_sqlite_file(tmp_path: Path) -> None:
    if connection.vendor != "sqlite":
        size = dashboard.database_size()
        assert size is not None
        assert size > 0
        return
    db = tmp_path / "db.sqlite3"
    db.write_bytes(b"\0" * 4096)
    (tmp_path / "db.sqlite3-wal").write_bytes(b"\0" * 100)

    with mock.patch.dict(connection.settings_dict, {"NAME": str(db)}):
        assert dashboard.database_size() == 4196
    with mock.patch.dict(connection.settings_dict, {"NAME": "file:memorydb?mode=memory"}):
        assert dashboard.database_size() is None


def test_the_front_page_shows_the_dashboard(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    create_room(api, alice)
    upload(api, alice, b"x" * 2048)
    queue_federation()
    User.objects.create_superuser("root", "root password")
    client = Client()
    client.login(username="root", password="root password")

    page = client.get("/admin/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="trellis-dashboard"' in html
    board = page.context["dashboard"]
    assert board.users.total == 3
    assert board.rooms == Room.objects.count() == 1
    assert "2.0\xa0KB" in html
    assert "4 PDUs, 1 EDU for 2 servers" in html
    assert html.count('class="bar"') == 24
    # Django's list of models is still there below.
    assert 'class="app-accounts' in html


def test_the_front_page_is_for_operators_only(api: MatrixTestClient, alice: Persona) -> None:
    client = Client()
    client.login(username="alice", password=alice.password)

    assert client.get("/admin/")["Location"].startswith("/admin/login/")
