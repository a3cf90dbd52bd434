"""The Push Gateway API's request, built from what the homeserver knows (pure).

Spec: content/push-gateway-api.md, ``POST /_matrix/push/v1/notify``; the pusher's
``data`` and ``format`` from the Client-Server API's ``POST /pushers/set``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from protocol.push.evaluator import tweaks as rule_tweaks

NOTIFY_PATH = "/_matrix/push/v1/notify"
EVENT_ID_ONLY = "event_id_only"


def check_gateway_url(url: str) -> str | None:
    """Why ``url`` cannot be a pusher's ``data.url``, or None. It "MUST be an HTTPS URL
    with a path of /_matrix/push/v1/notify"; whether plain HTTP may be allowed for a
    trusted host is the caller's to decide (this answers for https and http alike)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port raises ValueError
    except ValueError:
        return "'data.url' is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "'data.url' must be an HTTPS URL"
    if parts.path != NOTIFY_PATH:
        return f"'data.url' must have the path {NOTIFY_PATH}"
    if parts.username is not None or parts.password is not None:
        return "'data.url' must not carry credentials"
    if parts.fragment:
        return "'data.url' must not have a fragment"
    return None


def priority(event_type: str, tweaks: Mapping[str, Any]) -> str:
    """``prio``: "high" for what alerts the user (a sound or a highlight) and for
    encrypted events, whose effect the server cannot know; "low" for the rest, which
    gateways may deliver in a battery-saving way (as Synapse decides)."""
    if event_type == "m.room.encrypted" or tweaks.get("sound") or tweaks.get("highlight"):
        return "high"
    return "low"


@dataclass(frozen=True)
class Device:
    """The pusher the notification goes to (the request's ``devices`` entry)."""

    app_id: str
    pushkey: str
    pushkey_ts_ms: int
    data: Mapping[str, Any]

    def as_json(self, tweaks: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "pushkey": self.pushkey,
            "pushkey_ts": self.pushkey_ts_ms // 1000,
            # "the data dictionary passed in at pusher creation minus the url key",
            # custom keys and format included.
            "data": {k: v for k, v in self.data.items() if k != "url"},
            "tweaks": dict(tweaks),
        }

    @property
    def event_id_only(self) -> bool:
        return self.data.get("format") == EVENT_ID_ONLY


@dataclass(frozen=True)
class EventNotification:
    """What the homeserver tells a gateway about one event for one user."""

    event_id: str
    room_id: str
    type: str
    sender: str
    content: Mapping[str, Any]
    actions: Sequence[Any]
    unread: int
    state_key: str | None = None
    sender_display_name: str | None = None
    room_name: str | None = None
    room_alias: str | None = None
    missed_calls: int = 0


def notify_body(notification: EventNotification, device: Device, user_id: str) -> dict[str, Any]:
    """The JSON body of ``POST /_matrix/push/v1/notify`` for one pusher.

    With ``format: event_id_only`` only ``event_id``, ``room_id``, ``counts`` and
    ``devices`` (and ``prio``) are sent; otherwise every event-related field, the
    content included. Counts whose value is zero are omitted.
    """
    tweaks = rule_tweaks(notification.actions)
    counts = {
        name: value
        for name, value in (
            ("unread", notification.unread),
            ("missed_calls", notification.missed_calls),
        )
        if value
    }
    body: dict[str, Any] = {
        "event_id": notification.event_id,
        "room_id": notification.room_id,
        "prio": priority(notification.type, tweaks),
        "counts": counts,
        "devices": [device.as_json(tweaks)],
    }
    if device.event_id_only:
        return {"notification": body}
    # Synapse's older names, sent beside the spec's fields (it still sends them; sytest
    # and gateways written against Synapse read them): ``id`` is ``event_id``, and a
    # membership event's ``membership`` is its ``content.membership``. A gateway that
    # follows the Push Gateway API ignores fields it does not know.
    body["id"] = notification.event_id
    body["type"] = notification.type
    body["sender"] = notification.sender
    if notification.sender_display_name:
        body["sender_display_name"] = notification.sender_display_name
    if notification.room_name:
        body["room_name"] = notification.room_name
    if notification.room_alias:
        body["room_alias"] = notification.room_alias
    if notification.type == "m.room.member" and notification.state_key is not None:
        body["user_is_target"] = notification.state_key == user_id
        membership = notification.content.get("membership")
        if isinstance(membership, str):
            body["membership"] = membership
    if notification.content:
        body["content"] = dict(notification.content)
    return {"notification": body}


def badge_body(device: Device, unread: int) -> dict[str, Any]:
    """A request that only updates the user's unread count ("update the number of
    unread notifications a user has [...] The counts may be sent [...] by themselves"):
    no event fields and no tweaks, low priority (it alerts nobody). A zero count is
    omitted like any other ("Counts whose value is zero should be omitted")."""
    counts = {"unread": unread} if unread else {}
    return {"notification": {"prio": "low", "counts": counts, "devices": [device.as_json({})]}}


def rejected_pushkeys(response: Any) -> list[str]:
    """The pushkeys a gateway's answer says are not valid (``rejected``)."""
    if not isinstance(response, Mapping):
        return []
    rejected = response.get("rejected")
    if not isinstance(rejected, list):
        return []
    return [key for key in rejected if isinstance(key, str)]
