"""GET /keys/changes: here because its parameters are /sync tokens, whose format sync
owns; the answer is e2ee's device list changes between the two tokens."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from e2ee import selectors
from sync.tokens import SyncToken


class KeysChangesView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/keys/changes"""
        since = SyncToken.parse(self.query_str(request, "from", required=True) or "")
        upto = SyncToken.parse(self.query_str(request, "to", required=True) or "")
        changes = selectors.device_list_changes(
            request.user.user_id,
            events=(since.events, upto.events),
            device_lists=(since.device_lists, upto.device_lists),
        )
        return ok({"changed": changes.changed, "left": changes.left})
