"""Helpers for the push tests: notification counts in /sync, receipts, push rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, invite, join, room_path
from tests.sync.helpers import joined, sync


def group_room(api: MatrixTestClient, owner: Persona, *others: Persona) -> str:
    """A private room of ``owner`` that ``others`` were invited to and joined."""
    room = create_room(api, owner)
    for other in others:
        invite(api, owner, room, other)
        join(api, other, room)
    return room


def counts(body: dict[str, Any], room: str) -> tuple[int, int]:
    """A joined room's (notification_count, highlight_count) in a sync body."""
    unread = joined(body)[room]["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


def counts_now(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> tuple[int, int]:
    """The room's counts in an initial /sync of ``who``."""
    return counts(sync(api, who, **params), room)


def thread_counts(body: dict[str, Any], room: str) -> dict[str, tuple[int, int]]:
    threads = joined(body)[room].get("unread_thread_notifications", {})
    return {
        root: (value["notification_count"], value["highlight_count"])
        for root, value in threads.items()
    }


THREADED = {"room": {"timeline": {"unread_thread_notifications": True}}}


def message(body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


def in_thread(root: str, body: str = "in thread") -> dict[str, Any]:
    return message(body, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})


def send_receipt(
    api: MatrixTestClient,
    who: Persona,
    room: str,
    event_id: str,
    receipt_type: str = "m.read",
    **body: Any,
) -> None:
    response = api.post(
        room_path(room, "receipt", receipt_type, event_id), body, token=who.access_token
    )
    assert response.status == 200, response.body


def put_rule(
    api: MatrixTestClient, who: Persona, kind: str, rule_id: str, rule: dict[str, Any]
) -> Response:
    return api.put(
        f"pushrules/global/{kind}/{quote(rule_id, safe='')}", rule, token=who.access_token
    )


def set_rule_enabled(
    api: MatrixTestClient, who: Persona, kind: str, rule_id: str, enabled: bool
) -> None:
    response = api.put(
        f"pushrules/global/{kind}/{quote(rule_id, safe='')}/enabled",
        {"enabled": enabled},
        token=who.access_token,
    )
    assert response.status == 200, response.body
