"""Notifications for the push tests: PushAction rows as the send path writes them.

Until evaluation on the send path lands (push-counts), the rows are written here, in a
transaction with ``notify_new_actions`` as the send path's hook calls it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from push.delivery import notify_new_actions
from push.models import PushAction
from rooms.models import Event

MESSAGE_ACTIONS: list[Any] = ["notify"]
ONE_TO_ONE_ACTIONS: list[Any] = ["notify", {"set_tweak": "sound", "value": "default"}]
MENTION_ACTIONS: list[Any] = [
    "notify",
    {"set_tweak": "sound", "value": "default"},
    {"set_tweak": "highlight"},
]


def _highlights(actions: list[Any]) -> bool:
    return any(isinstance(a, dict) and a.get("set_tweak") == "highlight" for a in actions)


def notify(
    user_id: str, event_id: str, actions: list[Any] | None = None, *, thread_id: str = "main"
) -> PushAction:
    """Record that ``event_id`` notifies ``user_id`` with ``actions``, and kick delivery."""
    actions = MESSAGE_ACTIONS if actions is None else actions
    event = Event.objects.get(event_id=event_id)
    assert event.stream_ordering is not None
    with transaction.atomic():
        row = PushAction.objects.create(
            user_id=user_id,
            room_id=event.room_id,
            event_id=event_id,
            stream_ordering=event.stream_ordering,
            thread_id=thread_id,
            actions=actions,
            notify="notify" in actions,
            highlight=_highlights(actions),
            ts=event.origin_server_ts,
        )
        notify_new_actions([user_id], event.stream_ordering)
    return row
