"""GET /_matrix/client/v3/notifications (Push Notifications, "Listing Notifications")."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from protocol.errors import MatrixError
from push import selectors
from rooms.api.rooms import parse_limit

# Synapse's default page; the spec sets none.
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def _from_token(raw: str | None) -> int | None:
    """A ``next_token`` this endpoint gave: a stream position."""
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise MatrixError("M_INVALID_PARAM", "'from' is not a token from this endpoint")
    return int(raw)


class NotificationsView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/notifications"""
        before = _from_token(request.query_params.get("from"))
        limit = parse_limit(request, DEFAULT_LIMIT, MAX_LIMIT)
        only = request.query_params.get("only")
        page = selectors.notifications(
            request.user.user_id,
            before=before,
            limit=limit,
            only_highlight=only == "highlight",
        )
        body: dict[str, Any] = {"notifications": page.notifications}
        if page.next_token is not None:
            body["next_token"] = page.next_token
        return ok(body)
