"""Relationships, threads, event context and timestamp lookup endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError, missing_param
from rooms import relations, selectors
from rooms.api.common import check_room_id
from rooms.api.rooms import parse_filter_param, parse_limit
from rooms.serialize import client_events

# Defaults and maxima for ``limit`` (relations.yaml and threads_list.yaml ask for both).
RELATIONS_LIMIT, RELATIONS_MAX = 20, 100
THREADS_LIMIT, THREADS_MAX = 20, 100
CONTEXT_LIMIT, CONTEXT_MAX = 10, 100


def _direction(request: Request, *, default: str | None) -> str:
    value = request.query_params.get("dir", default)
    if value is None:
        raise missing_param("dir")
    if value not in ("b", "f"):
        raise MatrixError("M_INVALID_PARAM", "'dir' must be 'b' or 'f'")
    return value


def _boolean(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be 'true' or 'false'")
    return value == "true"


def _viewer(request: Request) -> tuple[str, str | None]:
    return request.user.user_id, request.auth.device.device_id


class RelationsView(MatrixView):
    requires_auth = True

    def get(
        self,
        request: Request,
        room_id: str,
        event_id: str,
        rel_type: str | None = None,
        event_type: str | None = None,
    ) -> Response:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]"""
        check_room_id(room_id)
        room = selectors.get_room(room_id)
        limit = max(1, parse_limit(request, RELATIONS_LIMIT, RELATIONS_MAX))
        page = relations.relations_for_event(
            room,
            event_id,
            request.user.user_id,
            rel_type=rel_type,
            event_type=event_type,
            from_token=request.query_params.get("from"),
            to_token=request.query_params.get("to"),
            direction=_direction(request, default="b"),
            limit=limit,
            recurse=_boolean(request, "recurse"),
        )
        bundles = relations.bundled_aggregations(
            page.chunk, request.user.user_id, viewer_device=_viewer(request)
        )
        response: dict[str, Any] = {
            "chunk": client_events(page.chunk, viewer_device=_viewer(request), bundles=bundles)
        }
        if page.next_batch is not None:
            response["next_batch"] = page.next_batch
        if page.prev_batch is not None:
            response["prev_batch"] = page.prev_batch
        if page.recursion_depth is not None:
            response["recursion_depth"] = page.recursion_depth
        return ok(response)


class ThreadsView(MatrixView):
    requires_auth = True

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v1/rooms/{roomId}/threads"""
        check_room_id(room_id)
        include = request.query_params.get("include", "all")
        if include not in ("all", "participated"):
            raise MatrixError("M_INVALID_PARAM", "'include' must be 'all' or 'participated'")
        limit = parse_limit(request, THREADS_LIMIT, THREADS_MAX)
        if limit < 1:
            raise MatrixError("M_INVALID_PARAM", "'limit' must be greater than zero")
        room = selectors.get_room(room_id)
        user_id = request.user.user_id
        page = relations.thread_roots(
            room,
            user_id,
            include=include,
            from_token=request.query_params.get("from"),
            limit=limit,
        )
        bundles = relations.bundled_aggregations(
            page.roots, user_id, viewer_device=_viewer(request)
        )
        chunk = client_events(page.roots, viewer_device=_viewer(request), bundles=bundles)
        relations.redact_ignored(chunk, page.roots, page.ignored_roots)
        response: dict[str, Any] = {"chunk": chunk}
        if page.next_batch is not None:
            response["next_batch"] = page.next_batch
        return ok(response)


class ContextView(MatrixView):
    requires_auth = True
    guest_methods = frozenset({"GET"})

    def get(self, request: Request, room_id: str, event_id: str) -> Response:
        """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
        check_room_id(room_id)
        room = selectors.get_room(room_id)
        room_filter = parse_filter_param(request)
        limit = parse_limit(request, CONTEXT_LIMIT, CONTEXT_MAX)
        if room_filter and isinstance(room_filter.get("limit"), int):
            limit = max(0, min(limit, room_filter["limit"]))
        user_id = request.user.user_id
        context = relations.event_context(
            room, event_id, user_id, limit=limit, room_filter=room_filter
        )
        timeline = [*context.events_before, context.event, *context.events_after]
        bundles = relations.bundled_aggregations(timeline, user_id, viewer_device=_viewer(request))
        events = client_events(timeline, viewer_device=_viewer(request), bundles=bundles)
        before = len(context.events_before)
        return ok(
            {
                "event": events[before],
                "events_before": events[:before],
                "events_after": events[before + 1 :],
                "start": context.start,
                "end": context.end,
                "state": client_events(context.state, viewer=user_id),
            }
        )


class TimestampToEventView(MatrixView):
    requires_auth = True

    def get(self, request: Request, room_id: str) -> Response:
        """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event"""
        check_room_id(room_id)
        raw_ts = self.query_str(request, "ts", required=True)
        try:
            ts = int(raw_ts or "")
        except ValueError:
            raise MatrixError("M_INVALID_PARAM", "'ts' must be an integer") from None
        direction = _direction(request, default=None)
        room = selectors.get_room(room_id)
        event = relations.event_at_timestamp(room, request.user.user_id, ts, direction)
        return ok({"event_id": event.event_id, "origin_server_ts": event.origin_server_ts})
