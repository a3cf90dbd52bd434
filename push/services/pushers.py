"""Pushers: POST /pushers/set, and their removal with the device or account that set them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

import streams.positions as streams
from accounts.clock import now_ms
from config.matrix_api import Body
from protocol.errors import MatrixError, bad_json
from protocol.push.gateway import EVENT_ID_ONLY
from push import gateway
from push.models import Pusher

logger = logging.getLogger(__name__)

MAX_APP_ID_CHARS = 64
MAX_PUSHKEY_BYTES = 512
# The columns' sizes (display names, profile tag, language).
MAX_NAME_CHARS = 255
MAX_LANG_CHARS = 64


@dataclass(frozen=True)
class PusherRequest:
    """A checked POST /pushers/set body; ``kind`` None deletes the pusher."""

    kind: str | None
    app_id: str
    pushkey: str
    app_display_name: str = ""
    device_display_name: str = ""
    profile_tag: str | None = None
    lang: str = ""
    data: dict[str, Any] | None = None
    append: bool = False


def check_pusher_request(body: Body) -> PusherRequest:
    """Validate a POST /pushers/set body: M_MISSING_PARAM for what is required and absent
    (all of it named at once, as the spec's example does), M_BAD_JSON for a wrong type,
    M_INVALID_PARAM for a value the spec does not allow."""
    missing = [name for name in ("kind", "app_id", "pushkey") if name not in body]
    kind = body.data.get("kind")
    if "kind" in body and kind is not None:
        missing += [
            name
            for name in ("app_display_name", "device_display_name", "lang", "data")
            if body.data.get(name) is None
        ]
    if missing:
        raise MatrixError("M_MISSING_PARAM", "Missing parameters: " + ", ".join(missing))
    if kind is not None and not isinstance(kind, str):
        raise bad_json("'kind' must be a string or null")
    app_id = body.req_str("app_id")
    pushkey = body.req_str("pushkey")
    if not app_id or len(app_id) > MAX_APP_ID_CHARS:
        raise MatrixError("M_INVALID_PARAM", "'app_id' must be 1 to 64 characters")
    if not pushkey or len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
        raise MatrixError("M_INVALID_PARAM", "'pushkey' must be 1 to 512 bytes")
    if kind is None:
        return PusherRequest(kind=None, app_id=app_id, pushkey=pushkey)
    if kind == "email":
        # An email pusher's pushkey must be an address bound to the account; this server
        # keeps no third-party identifiers yet, so no address can be.
        raise MatrixError(
            "M_THREEPID_NOT_FOUND",
            "Email pushers need an email address bound to the account, and this server "
            "does not support binding email addresses yet",
        )
    if kind != "http":
        raise MatrixError("M_INVALID_PARAM", f"Unknown pusher kind {kind!r}")
    request = PusherRequest(
        kind=kind,
        app_id=app_id,
        pushkey=pushkey,
        app_display_name=body.req_str("app_display_name"),
        device_display_name=body.req_str("device_display_name"),
        profile_tag=body.str("profile_tag"),
        lang=body.req_str("lang"),
        data=body.dict("data", required=True),
        append=body.bool("append"),
    )
    for name, value, limit in (
        ("app_display_name", request.app_display_name, MAX_NAME_CHARS),
        ("device_display_name", request.device_display_name, MAX_NAME_CHARS),
        ("profile_tag", request.profile_tag or "", MAX_NAME_CHARS),
        ("lang", request.lang, MAX_LANG_CHARS),
    ):
        if len(value) > limit:
            raise MatrixError("M_INVALID_PARAM", f"'{name}' must be at most {limit} characters")
    _check_http_data(request.data or {})
    return request


def _check_http_data(data: dict[str, Any]) -> None:
    url = data.get("url")
    if url is None:
        raise MatrixError("M_MISSING_PARAM", "'data.url' is required for an http pusher")
    if not isinstance(url, str):
        raise bad_json("'data.url' must be a string")
    problem = gateway.check_url(url)
    if problem:
        raise MatrixError("M_INVALID_PARAM", problem)
    if "format" in data and data["format"] != EVENT_ID_ONLY:
        raise MatrixError("M_INVALID_PARAM", f"'data.format' must be {EVENT_ID_ONLY!r} or absent")


def do_set_pusher(user_id: str, device_id: str | None, request: PusherRequest) -> None:
    """POST /pushers/set: create, update or (``kind`` null) delete the pusher with this
    ``app_id`` and ``pushkey`` of ``user_id``.

    Unless ``append``, the same app_id and pushkey of *other* users are removed ("the
    homeserver must remove any other pushers with the same App ID and pushkey for
    different users"). A new pusher starts at the current end of the events stream, so it
    pushes what happens from now on, not the user's past notifications; an updated one
    keeps its place (clients set their pusher again at every start) but forgets any
    backoff, since the client may just have fixed its URL.
    """
    with transaction.atomic():
        if request.kind is None:
            Pusher.objects.filter(
                user_id=user_id, app_id=request.app_id, pushkey=request.pushkey
            ).delete()
            return
        if not request.append:
            Pusher.objects.filter(app_id=request.app_id, pushkey=request.pushkey).exclude(
                user_id=user_id
            ).delete()
        now = now_ms()
        fields = {
            "device_id": device_id,
            "kind": request.kind,
            "app_display_name": request.app_display_name,
            "device_display_name": request.device_display_name,
            "profile_tag": request.profile_tag,
            "lang": request.lang,
            "data": request.data or {},
            "created_ts": now,
            "failing_since_ts": None,
            "retry_at_ts": None,
            "retry_delay_ms": 0,
        }
        Pusher.objects.update_or_create(
            user_id=user_id,
            app_id=request.app_id,
            pushkey=request.pushkey,
            defaults=fields,
            create_defaults={
                **fields,
                "last_stream_ordering": streams.current_position(streams.EVENTS),
            },
        )


def do_remove_rejected_pusher(pusher: Pusher) -> None:
    """The gateway said the pushkey is not valid: "Homeservers must cease sending
    notification requests for these pushkeys and remove the associated pushers"."""
    logger.info(
        "Push gateway rejected pushkey of %s (%s): removing", pusher.user_id, pusher.app_id
    )
    Pusher.objects.filter(pk=pusher.pk, pushkey=pusher.pushkey).delete()


def do_remove_device_pushers(user_id: str, device_id: str) -> None:
    """A device logged out or deleted takes the pushers it set with it (Synapse does the
    same: a pusher belongs to the session that created it)."""
    Pusher.objects.filter(user_id=user_id, device_id=device_id).delete()


def do_remove_user_pushers(user_id: str) -> None:
    """A deactivated account gets no more notifications."""
    Pusher.objects.filter(user_id=user_id).delete()
