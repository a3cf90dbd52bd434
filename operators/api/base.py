"""The base of every /_synapse/admin endpoint: a server admin's access token."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from accounts.api.auth import client_ip
from config.matrix_api import MatrixView
from operators.services import audit
from protocol.errors import MatrixError


class AdminView(MatrixView):
    """Synapse's admin API authentication: any endpoint needs the access token of a
    server admin (``User.is_staff``); anyone else gets 403 M_FORBIDDEN, as Synapse
    answers."""

    requires_auth = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not request.user.is_staff:
            raise MatrixError("M_FORBIDDEN", "You are not a server admin", status=403)

    def audit(self, request: Request, action: str, target: str = "", **details: Any) -> None:
        audit.record(
            request.user.user_id, action, target, via="api", ip=client_ip(request), **details
        )
