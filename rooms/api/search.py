"""Server-side search (Client-Server API, "Server Side Search")."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from accounts.services.filters import check_room_event_filter
from config.matrix_api import Body, MatrixView, ok
from protocol.errors import MatrixError, bad_json
from rooms import search
from rooms.serialize import client_events
from rooms.services.search_index import KEYS

GROUP_KEYS = ("room_id", "sender")


def _non_negative(body: Body, key: str, where: str) -> int | None:
    value = body.int(key)
    if value is not None and value < 0:
        raise bad_json(f"'{where}.{key}' must not be negative")
    return value


def parse_room_events(criteria: dict[str, Any], next_batch: str | None) -> search.Criteria:
    """The ``room_events`` criteria (search.yaml, "Room Events Criteria")."""
    body = Body(criteria)
    search_term = body.req_str("search_term")
    keys = body.list("keys")
    if keys is not None and not all(key in KEYS for key in keys):
        raise MatrixError("M_INVALID_PARAM", f"'keys' may only hold {', '.join(KEYS)}")
    room_filter = body.dict("filter")
    check_room_event_filter(room_filter, "filter")
    order_by = body.str("order_by", default=search.RANK)
    if order_by not in (search.RANK, search.RECENT):
        raise MatrixError("M_INVALID_PARAM", "'order_by' must be 'rank' or 'recent'")
    before_limit = after_limit = None
    include_profile = False
    context = body.dict("event_context")
    if context is not None:
        context_body = Body(context)
        before_limit = _non_negative(context_body, "before_limit", "event_context")
        after_limit = _non_negative(context_body, "after_limit", "event_context")
        before_limit = search.CONTEXT_DEFAULT if before_limit is None else before_limit
        after_limit = search.CONTEXT_DEFAULT if after_limit is None else after_limit
        include_profile = context_body.bool("include_profile")
    group_by: list[str] = []
    groupings = body.dict("groupings")
    for group in Body(groupings or {}).list("group_by") or []:
        key = group.get("key") if isinstance(group, dict) else None
        if key not in GROUP_KEYS:
            raise MatrixError("M_INVALID_PARAM", "'group_by' keys must be 'room_id' or 'sender'")
        if key not in group_by:
            group_by.append(key)
    return search.Criteria(
        search_term=search_term,
        keys=tuple(dict.fromkeys(keys)) if keys is not None else KEYS,
        room_filter=room_filter,
        order_by=order_by,
        before_limit=before_limit,
        after_limit=after_limit,
        include_profile=include_profile,
        include_state=body.bool("include_state"),
        group_by=tuple(group_by),
        next_batch=next_batch,
    )


def _shape(outcome: search.Outcome, viewer: tuple[str, str | None]) -> dict[str, Any]:
    results = []
    events = client_events([result.event for result in outcome.results], viewer_device=viewer)
    for result, event in zip(outcome.results, events, strict=True):
        shaped: dict[str, Any] = {"rank": result.rank, "result": event}
        context = result.context
        if context is not None:
            shaped["context"] = {
                "start": context.start,
                "end": context.end,
                "events_before": client_events(context.events_before, viewer_device=viewer),
                "events_after": client_events(context.events_after, viewer_device=viewer),
            }
            if context.profile_info is not None:
                shaped["context"]["profile_info"] = context.profile_info
        results.append(shaped)
    room_events: dict[str, Any] = {
        "results": results,
        "count": outcome.count,
        "highlights": outcome.highlights,
    }
    if outcome.next_batch is not None:
        room_events["next_batch"] = outcome.next_batch
    if outcome.groups:
        room_events["groups"] = outcome.groups
    if outcome.state:
        room_events["state"] = {
            room_id: client_events(rows, viewer=viewer[0])
            for room_id, rows in outcome.state.items()
        }
    return room_events


class SearchView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/search"""
        body = self.body(request)
        categories = body.dict("search_categories", required=True)
        assert categories is not None
        room_events = Body(categories).dict("room_events")
        if room_events is None:
            return ok({"search_categories": {}})
        criteria = parse_room_events(room_events, request.query_params.get("next_batch"))
        outcome = search.search_room_events(request.user, criteria)
        viewer = (request.user.user_id, request.auth.device.device_id)
        return ok({"search_categories": {"room_events": _shape(outcome, viewer)}})
