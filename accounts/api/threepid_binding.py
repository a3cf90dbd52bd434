"""A user's addresses at identity servers: bind, unbind, and delete from the account."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from accounts.services import threepid_binding
from config.matrix_api import MatrixView, ok


class BindView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/3pid/bind"""
        body = self.body(request)
        threepid_binding.do_bind_threepid(
            request.user,
            id_server=body.req_str("id_server"),
            id_access_token=body.req_str("id_access_token"),
            sid=body.req_str("sid"),
            client_secret=body.req_str("client_secret"),
        )
        return ok()


class UnbindView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/3pid/unbind"""
        body = self.body(request)
        result = threepid_binding.do_unbind_threepid(
            request.user, body.req_str("medium"), body.req_str("address"), body.str("id_server")
        )
        return ok({"id_server_unbind_result": result})


class DeleteView(MatrixView):
    requires_auth = True

    def post(self, request: Request) -> Response:
        """POST /_matrix/client/v3/account/3pid/delete"""
        body = self.body(request)
        result = threepid_binding.do_delete_threepid(
            request.user, body.req_str("medium"), body.req_str("address"), body.str("id_server")
        )
        return ok({"id_server_unbind_result": result})
