"""The user directory (Client-Server API, "User directory")."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from config.matrix_api import MatrixView, ok
from protocol.errors import invalid_param
from rooms.selectors_user_directory import search_users

DEFAULT_LIMIT = 10
# As Synapse: a larger limit is lowered to this.
MAX_LIMIT = 50
# A display name is at most 256 characters here (accounts.services.profile) and a user
# ID 255 bytes: a longer term cannot match.
MAX_SEARCH_TERM_LENGTH = 256


class UserDirectorySearchView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/user_directory/search"""
        body = self.body(request)
        term = body.req_str("search_term")
        limit = body.int("limit", default=DEFAULT_LIMIT)
        assert limit is not None
        if len(term) > MAX_SEARCH_TERM_LENGTH:
            raise invalid_param(
                f"'search_term' is longer than {MAX_SEARCH_TERM_LENGTH} characters"
            )
        if limit < 0:
            raise invalid_param("'limit' must not be negative")
        users, limited = search_users(request.user.user_id, term, min(limit, MAX_LIMIT))
        results = []
        for user in users:
            result = {"user_id": user.user_id}
            if user.display_name is not None:
                result["display_name"] = user.display_name
            if user.avatar_url is not None:
                result["avatar_url"] = user.avatar_url
            results.append(result)
        return ok({"results": results, "limited": limited})
