"""GET /sync: an async Django view, so a long-poll waits on the event loop."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from django import db
from django.http import HttpRequest, HttpResponse

from accounts import selectors as account_selectors
from accounts.authentication import authenticate_request
from accounts.models import AccessToken
from accounts.services.filters import check_filter
from config import hangup
from config.exceptions import matrix_error_response
from config.matrix_api import parse_json
from config.renderers import dumps
from config.request_threads import in_request_thread
from protocol.errors import MatrixError
from rooms.selectors import joined_room_ids
from sync import hub, legacy, providers
from sync.builder import SyncRequest, SyncResult, build_sync
from sync.tokens import SyncToken

P = ParamSpec("P")
T = TypeVar("T")

# Long-polls are capped so that proxies and clients with short timeouts are not surprised.
MAX_TIMEOUT_MS = 120_000


def _bool_param(request: HttpRequest, name: str) -> bool:
    value = request.GET.get(name, "false")
    if value not in ("true", "false"):
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be true or false")
    return value == "true"


def _timeout_ms(request: HttpRequest) -> int:
    raw = request.GET.get("timeout", "0")
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError("M_INVALID_PARAM", "'timeout' must be an integer") from None
    return max(0, min(value, MAX_TIMEOUT_MS))


def _load_filter(session: AccessToken, raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    if raw.lstrip().startswith("{"):
        definition = parse_json(raw.encode("utf-8"))
        if not isinstance(definition, dict):
            raise MatrixError("M_BAD_JSON", "The filter must be a JSON object")
        check_filter(definition)
        return definition
    try:
        return account_selectors.get_filter(session.user, raw)
    except MatrixError:
        raise MatrixError("M_INVALID_PARAM", "Unknown filter ID") from None


def _prepare(request: HttpRequest, timeout_ms: int) -> tuple[SyncRequest, bool]:
    """The parsed request, and whether it is a long-poll (or answered at once)."""
    session = authenticate_request(request.META, request.GET)
    if session is None:
        raise MatrixError("M_MISSING_TOKEN", "Missing access token")
    since_raw = request.GET.get("since")
    sync_request = SyncRequest(
        user=session.user,
        device_id=session.device.device_id,
        since=SyncToken.parse(since_raw) if since_raw else None,
        filter=_load_filter(session, request.GET.get("filter")),
        full_state=_bool_param(request, "full_state"),
        use_state_after=_bool_param(request, "use_state_after"),
    )
    set_presence = request.GET.get("set_presence")
    if set_presence is not None and set_presence not in ("offline", "online", "unavailable"):
        raise MatrixError(
            "M_INVALID_PARAM", "'set_presence' must be offline, online or unavailable"
        )
    sync_request.set_presence = set_presence or "online"
    providers.record_activity(sync_request)
    long_poll = timeout_ms > 0 and not sync_request.full_state and sync_request.since is not None
    return sync_request, long_poll


def _released(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``function`` run in a request thread, giving its database connection back afterwards.

    A long-poll waits up to two minutes between builds; holding a connection (a pool
    slot on PostgreSQL) through the wait would let fifty waiting clients starve every
    other request.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        finally:
            for connection in db.connections.all(initialized_only=True):
                # Never inside a transaction (tests wrap each test in one).
                if not connection.in_atomic_block:
                    connection.close()

    return in_request_thread(run)


Prepare = Callable[[HttpRequest, int], tuple[SyncRequest, bool]]
# Builds a response as of a token: /sync's (build_sync) or GET /events' (sync.legacy).
Build = Callable[[SyncRequest, SyncToken | None], SyncResult]


def _watched_rooms(sync_request: SyncRequest) -> list[str]:
    """The rooms whose wake-ups concern a long-poll: the user's joined rooms, and those
    its filter names (GET /events with ``room_id``: a room the user may only peek into)."""
    named = sync_request.room_filter().get("rooms")
    rooms = joined_room_ids(sync_request.user_id)
    if isinstance(named, list):
        rooms.extend(room_id for room_id in named if isinstance(room_id, str))
    return rooms


def _first_look(
    request: HttpRequest, timeout_ms: int, prepare: Prepare, build: Build
) -> tuple[SyncRequest, SyncResult | None, list[str] | None]:
    """Parse the request and build its answer, unless it is a long-poll whose token no
    stream has passed; with the rooms to wait on if it is a long-poll."""
    sync_request, long_poll = prepare(request, timeout_ms)
    now = SyncToken.current_for(sync_request)
    if long_poll and sync_request.since == now:
        # No stream has moved since the token: no build can find news, so the long-poll
        # goes straight to waiting. Every change a /sync reports moves a stream
        # position (typing expiry included), so this one query stands in for a build.
        return sync_request, None, _watched_rooms(sync_request)
    result = build(sync_request, now)
    return sync_request, result, result.joined_room_ids if long_poll else None


_look = _released(_first_look)


def _rebuild(build: Build, sync_request: SyncRequest) -> SyncResult:
    return build(sync_request, None)


_build = _released(_rebuild)


async def sync(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """GET /_matrix/client/v3/sync"""
    try:
        if request.method != "GET":
            raise MatrixError("M_UNRECOGNIZED", "Method not allowed", status=405)
        _, result = await _answer(request, _timeout_ms(request), _prepare, build_sync)
        return _json(result.body)
    except MatrixError as error:
        return matrix_error_response(error)


def _prepare_events(request: HttpRequest, timeout_ms: int) -> tuple[SyncRequest, bool]:
    """GET /events: the stream from ``from`` (a token of /events, /initialSync or
    /sync), or from now without it; a long-poll unless ``timeout`` is 0."""
    session = authenticate_request(request.META, request.GET)
    if session is None:
        raise MatrixError("M_MISSING_TOKEN", "Missing access token")
    room_id = request.GET.get("room_id")
    if room_id is not None:
        legacy.check_may_stream_room(session.user.user_id, room_id)
    sync_request = SyncRequest(
        user=session.user,
        device_id=session.device.device_id,
        since=None,
        filter=legacy.stream_filter(room_id),
        full_state=False,
        use_state_after=False,
    )
    # Streaming events is syncing: the user is online, as with /sync's default.
    providers.record_activity(sync_request)
    raw_from = request.GET.get("from")
    if raw_from:
        try:
            sync_request.since = SyncToken.parse(raw_from)
        except MatrixError:
            raise MatrixError("M_INVALID_PARAM", "'from' is not a token of this server") from None
    else:
        sync_request.since = SyncToken.current_for(sync_request)
    return sync_request, timeout_ms > 0


async def events(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """GET /_matrix/client/v3/events (deprecated, Client-Server API "Legacy"; with
    ``room_id``, "Room Previews"): the events since ``from``, waiting up to ``timeout``
    ms for some (sync.legacy)."""
    try:
        if request.method != "GET":
            raise MatrixError("M_UNRECOGNIZED", "Method not allowed", status=405)
        timeout_ms = _timeout_ms(request)
        limit = legacy.parse_limit(request.GET.get("limit"))
        room_id = request.GET.get("room_id")
        build: Build
        if room_id is not None:
            build = functools.partial(legacy.room_event_stream, room_id=room_id, limit=limit)
        else:
            build = functools.partial(legacy.event_stream, limit=limit)
        sync_request, result = await _answer(request, timeout_ms, _prepare_events, build)
        assert sync_request.since is not None
        return _json(
            {
                "chunk": result.body["chunk"],
                "start": str(sync_request.since),
                "end": result.body["next_batch"],
            }
        )
    except MatrixError as error:
        return matrix_error_response(error)


async def _answer(
    request: HttpRequest, timeout_ms: int, prepare: Prepare, build: Build
) -> tuple[SyncRequest, SyncResult]:
    """The request, and the response ``build`` gives it, waiting for news up to
    ``timeout_ms`` if it is a long-poll."""
    wakeups = hub.hub.start()
    sync_request, result, room_ids = await _look(request, timeout_ms, prepare, build)
    # Answered at once (room_ids None: not a long-poll, and always built) or news found.
    if result is not None and (room_ids is None or result.has_updates):
        return sync_request, result
    deadline = time.monotonic() + timeout_ms / 1000
    # A wake-up received since ``wakeups`` wakes this waiter at once: it may concern
    # news the first look missed. A client that hangs up ends the wait.
    async with (
        hangup.cancelled_on_hangup(request),
        hub.hub.waiting(sync_request.user_id, room_ids, wakeups) as waiter,
    ):
        while result is None or not result.has_updates:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await hub.wait(waiter, remaining):
                break
            result = await _build(build, sync_request)
            waiter.room_ids = set(result.joined_room_ids) | waiter.room_ids
        if result is None:
            # Timed out with nothing new: the empty response for this token.
            result = await _build(build, sync_request)
    return sync_request, result


def _json(body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(dumps(body), content_type="application/json")
