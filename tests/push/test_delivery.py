"""Delivery to push gateways (Push Gateway API, POST /_matrix/push/v1/notify) from the
PushAction rows the send path writes: payload, counts and priority, rejected pushkeys, a
gateway that is down for a while, and the sweep.

Sends inside ``run_on_commit()`` run what follows their commit (the kick, and the eager
Celery task it queues); sends outside it only write their rows, as when a kick is lost.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from config.celery import app as celery_app
from push import delivery, selectors, tasks
from push.models import PushAction, Pusher
from tests.conftest import MatrixTestClient, Persona
from tests.push.conftest import Gateway, http_pusher, set_pusher
from tests.rooms.helpers import create_room, invite, join, room_path, send, set_state
from tests.sync.ephemeral_helpers import send_receipt


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    """A named room of alice and bob (two members: one-to-one rules); bob is "Bobby"."""
    room_id = create_room(api, alice, name="Mission Control", preset="public_chat")
    join(api, bob, room_id)
    member = {"membership": "join", "displayname": "Bobby"}
    set_state(api, bob, room_id, "m.room.member", member, bob.user_id)
    return room_id


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Run what is queued after commit (the kicks, and the eager Celery tasks they send)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def mention(who: Persona, body: str = "look") -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": [who.user_id]}}


def test_a_message_to_an_offline_user_reaches_the_gateway(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    carol: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    join(api, carol, room)  # three members: group rules
    set_pusher(api, alice, http_pusher(gateway.url, data={"url": gateway.url, "custom": "x"}))
    with run_on_commit():
        first = send(api, bob, room, "Houston?")
    with run_on_commit():
        second = send(api, bob, room, mention(alice, "alice: I'm floating"))
    assert [n["event_id"] for n in gateway.notifications] == [first, second]
    assert {r["path"] for r in gateway.received} == {"/_matrix/push/v1/notify"}
    latest = gateway.notifications[1]
    pushkey_ts = latest["devices"][0].pop("pushkey_ts")
    assert isinstance(pushkey_ts, int)
    assert pushkey_ts > 1_600_000_000
    assert latest == {
        "event_id": second,
        "id": second,  # Synapse's older name, sent beside event_id
        "room_id": room,
        "type": "m.room.message",
        "sender": bob.user_id,
        "sender_display_name": "Bobby",
        "room_name": "Mission Control",
        # A mention makes a sound and highlights (.m.rule.is_user_mention).
        "prio": "high",
        "content": mention(alice, "alice: I'm floating"),
        # Both messages are unread when the second goes out.
        "counts": {"unread": 2},
        "devices": [
            {
                "app_id": "org.example.app.android",
                "pushkey": "pushkey-1",
                # The pusher's data minus the url, custom keys included.
                "data": {"custom": "x"},
                "tweaks": {"sound": "default", "highlight": True},
            }
        ],
    }
    # A plain group message (.m.rule.message) makes no sound: low priority.
    assert gateway.notifications[0]["prio"] == "low"
    assert gateway.notifications[0]["counts"] == {"unread": 1}
    assert gateway.notifications[0]["devices"][0]["tweaks"] == {}
    pusher = Pusher.objects.get()
    assert pusher.last_success_ts is not None
    assert pusher.failing_since_ts is None


def test_one_to_one_messages_are_high_and_event_id_only_sends_no_content(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    data = {"url": gateway.url, "format": "event_id_only"}
    set_pusher(api, alice, http_pusher(gateway.url, data=data))
    with run_on_commit():
        send(api, bob, room, "just us")
    (only,) = gateway.notifications
    assert set(only) == {"event_id", "room_id", "prio", "counts", "devices"}
    assert only["prio"] == "high"
    assert only["counts"] == {"unread": 1}
    assert only["devices"][0]["data"] == {"format": "event_id_only"}
    assert only["devices"][0]["tweaks"] == {"sound": "default"}


def test_every_pusher_of_the_user_gets_it_and_nobody_else(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url, pushkey="phone"))
    set_pusher(api, alice, http_pusher(gateway.url, pushkey="tablet"))
    set_pusher(api, bob, http_pusher(gateway.url, pushkey="bobs"))
    with run_on_commit():
        send(api, bob, room)
    pushkeys = sorted(n["devices"][0]["pushkey"] for n in gateway.notifications)
    assert pushkeys == ["phone", "tablet"]


def test_a_new_pusher_does_not_push_older_notifications(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    send(api, bob, room, "before")
    set_pusher(api, alice, http_pusher(gateway.url))
    assert tasks.resume_pushers() == 0
    with run_on_commit():
        new = send(api, bob, room, "after")
    assert [n["event_id"] for n in gateway.notifications] == [new]
    assert gateway.notifications[0]["counts"] == {"unread": 2}


def test_read_notifications_are_not_pushed_and_not_counted(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str, gateway: Gateway
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    send(api, bob, room, "one")  # no kick runs: rows only
    second = send(api, bob, room, "two")
    third = send(api, bob, room, "three")
    assert selectors.unread_notification_count(alice.user_id) == 3
    assert send_receipt(api, alice, room, second, "m.read.private").status == 200
    assert selectors.unread_notification_count(alice.user_id) == 1
    assert tasks.resume_pushers() == 1
    assert [n["event_id"] for n in gateway.notifications] == [third]
    assert gateway.notifications[0]["counts"] == {"unread": 1}
    assert tasks.resume_pushers() == 0


def test_the_users_own_message_reads_the_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str, gateway: Gateway
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    send(api, bob, room, "one")
    send(api, alice, room, "answered from another device")
    assert selectors.unread_notification_count(alice.user_id) == 0
    tasks.resume_pushers()
    assert gateway.received == []


def test_the_unread_count_sums_rooms_and_threads(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    other = create_room(api, bob, preset="public_chat")
    join(api, alice, other)
    root = send(api, bob, room, "root")
    in_thread = {"rel_type": "m.thread", "event_id": root}
    reply = send(api, bob, room, {"msgtype": "m.text", "body": "in", "m.relates_to": in_thread})
    later = send(api, bob, room, "main again")
    send(api, bob, other, "elsewhere")
    assert selectors.unread_notification_count(alice.user_id) == 4
    response = send_receipt(api, alice, room, later, thread_id="main")
    assert response.status == 200, response.body
    assert selectors.unread_notification_count(alice.user_id) == 2
    response = send_receipt(api, alice, room, reply, thread_id=root)
    assert response.status == 200, response.body
    assert selectors.unread_notification_count(alice.user_id) == 1
    # Rooms the user left do not count.
    assert api.post(room_path(other, "leave"), {}, token=alice.access_token).status == 200
    assert selectors.unread_notification_count(alice.user_id) == 0


def test_a_rejected_pushkey_removes_the_pusher(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url, pushkey="expired"))
    set_pusher(api, alice, http_pusher(gateway.url, pushkey="fine"))
    gateway.rejected = ["expired", "someone-elses"]
    with run_on_commit():
        send(api, bob, room)
    assert list(Pusher.objects.values_list("pushkey", flat=True)) == ["fine"]
    gateway.rejected = []
    with run_on_commit():
        send(api, bob, room)
    assert [n["devices"][0]["pushkey"] for n in gateway.notifications[2:]] == ["fine"]


def test_a_gateway_down_for_a_while_gets_each_notification_once(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [2_000_000_000_000]
    monkeypatch.setattr(delivery, "now_ms", lambda: now[0])
    set_pusher(api, alice, http_pusher(gateway.url))
    gateway.status = 503
    with run_on_commit():
        first = send(api, bob, room, "one")
    pusher = Pusher.objects.get()
    assert gateway.received == []
    assert pusher.failing_since_ts == now[0]
    assert pusher.retry_at_ts == now[0] + delivery.INITIAL_BACKOFF_MS
    # Nothing is tried again before the backoff is over, whatever kicks it.
    with run_on_commit():
        second = send(api, bob, room, "two")
    assert tasks.resume_pushers() == 0
    assert Pusher.objects.get().retry_delay_ms == delivery.INITIAL_BACKOFF_MS
    # Each failure doubles the wait.
    now[0] += 1000
    assert tasks.resume_pushers() == 1
    pusher = Pusher.objects.get()
    assert pusher.retry_delay_ms == 2000
    assert pusher.retry_at_ts == now[0] + 2000
    assert pusher.failing_since_ts == now[0] - 1000
    # The gateway is back: at the next retry both arrive, in order, once.
    gateway.status = 200
    now[0] += 2000
    assert tasks.resume_pushers() == 1
    assert [n["event_id"] for n in gateway.notifications] == [first, second]
    assert tasks.resume_pushers() == 0
    with run_on_commit():
        third = send(api, bob, room, "three")
    assert [n["event_id"] for n in gateway.notifications] == [first, second, third]
    pusher = Pusher.objects.get()
    assert (pusher.failing_since_ts, pusher.retry_at_ts, pusher.retry_delay_ms) == (None, None, 0)


def test_an_unreachable_gateway_is_retried_and_given_up_after_a_day(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = Gateway()
    closed.stop()  # connections to its port are refused
    now = [2_000_000_000_000]
    monkeypatch.setattr(delivery, "now_ms", lambda: now[0])
    set_pusher(api, alice, http_pusher(closed.url))
    event_id = send(api, bob, room, "one")
    row = PushAction.objects.get(user_id=alice.user_id, event_id=event_id)
    assert tasks.resume_pushers() == 1
    first_failure = now[0]
    delays = []
    while True:
        pusher = Pusher.objects.get()
        if pusher.retry_at_ts is None:
            break
        delays.append(pusher.retry_delay_ms)
        now[0] = pusher.retry_at_ts
        delivery.deliver_pending(pusher.pk)
    assert delays[:4] == [1000, 2000, 4000, 8000]
    assert max(delays) == delivery.MAX_BACKOFF_MS
    # Given up a day after the first failure: the pointer moved past the notification,
    # and the pusher starts afresh.
    assert now[0] - first_failure > delivery.GIVE_UP_AFTER_MS
    pusher = Pusher.objects.get()
    assert pusher.last_stream_ordering == row.stream_ordering
    assert pusher.failing_since_ts is None
    assert pusher.last_success_ts is None
    assert tasks.resume_pushers() == 0


def test_a_gateway_refusing_a_request_skips_it(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    gateway.status = 400
    with run_on_commit():
        send(api, bob, room)
    assert Pusher.objects.get().failing_since_ts is None
    assert tasks.resume_pushers() == 0


def test_a_private_address_outside_the_allow_list_is_never_contacted(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
    settings: Any,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    settings.PUSH_IP_ALLOWLIST = []  # the operator narrowed it after the pusher was set
    with run_on_commit():
        send(api, bob, room)
    assert gateway.received == []
    assert Pusher.objects.get().failing_since_ts is not None


def test_the_kick_is_for_users_with_pushers_only(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    kicked: list[int] = []
    monkeypatch.setattr(tasks.deliver, "delay", kicked.append)
    with run_on_commit():
        send(api, alice, room)  # bob has no pusher
    assert kicked == []
    with run_on_commit():
        send(api, bob, room)
    assert kicked == [Pusher.objects.get().pk]


def test_one_run_at_a_time_per_pusher(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str, gateway: Gateway
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    send(api, bob, room)
    pusher = Pusher.objects.get()
    Pusher.objects.filter(pk=pusher.pk).update(
        lease_token="other-worker", lease_until_ts=delivery.now_ms() + 60_000
    )
    assert delivery.deliver_pending(pusher.pk).sent == 0
    assert tasks.resume_pushers() == 0
    assert gateway.received == []
    # A lease whose holder died runs out; then the sweep resumes the pusher.
    Pusher.objects.filter(pk=pusher.pk).update(lease_until_ts=delivery.now_ms() - 1)
    assert tasks.resume_pushers() == 1
    assert len(gateway.received) == 1
    assert Pusher.objects.get().lease_token is None


def test_a_redacted_event_is_pushed_without_its_content(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str, gateway: Gateway
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    event_id = send(api, bob, room, "oops")
    response = api.put(room_path(room, "redact", event_id, "r1"), {}, token=bob.access_token)
    assert response.status == 200, response.body
    assert tasks.resume_pushers() == 1
    assert "content" not in gateway.notifications[0]


def test_other_processes_learn_of_new_pushers_through_the_shared_version(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "INDEX_CHECK_S", 0.0)
    assert delivery.pusher_ids_of([alice.user_id]) == []
    # Written by another process: no signal here, only the version it publishes.
    (pusher,) = Pusher.objects.bulk_create(
        [
            Pusher(
                user_id=alice.user_id,
                kind="http",
                app_id="a",
                pushkey="k",
                app_display_name="",
                device_display_name="",
                lang="en",
                data={"url": "https://push.example.org/_matrix/push/v1/notify"},
                created_ts=0,
            )
        ]
    )
    assert delivery.pusher_ids_of([alice.user_id]) == []
    cache.set("push:pushers:version", "from-another-process", timeout=None)
    assert delivery.pusher_ids_of([alice.user_id]) == [pusher.pk]


def test_the_sweep_is_scheduled() -> None:
    entry = celery_app.conf.beat_schedule["resume-pushers"]
    assert entry["task"] == tasks.resume_pushers.name
    assert float(entry["schedule"]) <= 60


def test_an_unreachable_shared_cache_does_not_fail_sends(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(delivery.cache, "get", down)
    monkeypatch.setattr(delivery.cache, "set", down)
    delivery.forget_index()
    with run_on_commit():
        send(api, bob, room)
    assert len(gateway.received) == 1


def test_an_invite_is_pushed_with_the_membership(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    # .m.rule.invite_for_me; besides the spec's user_is_target, the membership and the
    # event ID under Synapse's older name ``id``.
    room_id = create_room(api, bob, preset="private_chat")
    set_pusher(api, alice, http_pusher(gateway.url))
    with run_on_commit():
        invite(api, bob, room_id, alice)
    (pushed,) = gateway.notifications
    assert pushed["type"] == "m.room.member"
    assert pushed["sender"] == bob.user_id
    assert pushed["user_is_target"] is True
    assert pushed["membership"] == "invite"
    assert pushed["id"] == pushed["event_id"]
    assert pushed["devices"][0]["tweaks"] == {"sound": "default"}


def test_a_read_receipt_sends_the_new_unread_count(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    # "update the number of unread notifications a user has [...] The counts may be
    # sent [...] by themselves."
    set_pusher(api, alice, http_pusher(gateway.url, data={"url": gateway.url, "custom": "x"}))
    with run_on_commit():
        first = send(api, bob, room, "one")
    with run_on_commit():
        second = send(api, bob, room, "two")
    assert [n["counts"] for n in gateway.notifications] == [{"unread": 1}, {"unread": 2}]
    with run_on_commit():
        assert send_receipt(api, alice, room, first).status == 200
    badge = gateway.notifications[-1]
    pushkey_ts = badge["devices"][0].pop("pushkey_ts")
    assert isinstance(pushkey_ts, int)
    assert badge == {
        "prio": "low",
        "counts": {"unread": 1},
        "devices": [
            {
                "app_id": "org.example.app.android",
                "pushkey": "pushkey-1",
                "data": {"custom": "x"},
                "tweaks": {},
            }
        ],
    }
    # A receipt that moves nothing, or leaves the count as the gateway has it, sends
    # nothing.
    with run_on_commit():
        send_receipt(api, alice, room, first)
        send_receipt(api, alice, room, first, "m.read.private")
    assert len(gateway.notifications) == 3
    # Everything read: "Counts whose value is zero should be omitted."
    with run_on_commit():
        send_receipt(api, alice, room, second, "m.read.private")
    assert gateway.notifications[-1]["counts"] == {}
    assert len(gateway.notifications) == 4


def test_a_badge_update_can_reject_the_pushkey(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    with run_on_commit():
        event_id = send(api, bob, room, "one")
    gateway.rejected = ["pushkey-1"]
    with run_on_commit():
        send_receipt(api, alice, room, event_id)
    assert gateway.notifications[-1]["counts"] == {}
    assert not Pusher.objects.exists()


def test_other_users_receipts_send_no_badge(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    room: str,
    gateway: Gateway,
    run_on_commit: Any,
) -> None:
    set_pusher(api, alice, http_pusher(gateway.url))
    with run_on_commit():
        event_id = send(api, alice, room, "from alice")
    with run_on_commit():
        send_receipt(api, bob, room, event_id)
    assert gateway.notifications == []
