"""Push rules: the nine /pushrules operations (Client-Server API, "Push Rules: API")."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from config.matrix_api import MatrixView, ok
from protocol.errors import bad_json, missing_param
from protocol.push.rules import check_kind, find_rule
from push import rules as selectors
from push.services import rules as services


class PushRulesView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/pushrules/"""
        return ok({"global": selectors.ruleset_for(request.user.user_id)})


class GlobalPushRulesView(MatrixView):
    requires_auth = True

    def get(self, request: Request) -> Response:
        """GET /_matrix/client/v3/pushrules/global/"""
        return ok(selectors.ruleset_for(request.user.user_id))


class PushRulesOfKindView(MatrixView):
    requires_auth = True

    def get(self, request: Request, kind: str) -> Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/ (not in the spec; Synapse's)"""
        rules = selectors.ruleset_for(request.user.user_id)
        return ok(rules[check_kind(kind)])

    def put(self, request: Request, kind: str) -> Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId} with an empty ruleId"""
        body = self.body(request)
        services.do_put_rule(request.user, kind, "", body.data)
        return ok()

    def delete(self, request: Request, kind: str) -> Response:
        """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId} with an empty ruleId"""
        services.do_delete_rule(request.user, kind, "")
        return ok()


def _rule(user: User, kind: str, rule_id: str) -> dict[str, Any]:
    return find_rule(selectors.ruleset_for(user.user_id), kind, rule_id)


class PushRuleView(MatrixView):
    requires_auth = True

    def get(self, request: Request, kind: str, rule_id: str) -> Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        return ok(_rule(request.user, kind, rule_id))

    def put(self, request: Request, kind: str, rule_id: str) -> Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        body = self.body(request)
        services.do_put_rule(
            request.user,
            kind,
            rule_id,
            body.data,
            before=self.query_str(request, "before"),
            after=self.query_str(request, "after"),
        )
        return ok()

    def delete(self, request: Request, kind: str, rule_id: str) -> Response:
        """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
        services.do_delete_rule(request.user, kind, rule_id)
        return ok()


class PushRuleEnabledView(MatrixView):
    requires_auth = True

    def get(self, request: Request, kind: str, rule_id: str) -> Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
        return ok({"enabled": _rule(request.user, kind, rule_id)["enabled"]})

    def put(self, request: Request, kind: str, rule_id: str) -> Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
        body = self.body(request)
        if "enabled" not in body:
            raise missing_param("enabled")
        enabled = body.data["enabled"]
        if not isinstance(enabled, bool):
            raise bad_json("'enabled' must be a boolean")
        services.do_set_rule_enabled(request.user, kind, rule_id, enabled)
        return ok()


class PushRuleActionsView(MatrixView):
    requires_auth = True

    def get(self, request: Request, kind: str, rule_id: str) -> Response:
        """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        return ok({"actions": _rule(request.user, kind, rule_id)["actions"]})

    def put(self, request: Request, kind: str, rule_id: str) -> Response:
        """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions"""
        body = self.body(request)
        if "actions" not in body:
            raise missing_param("actions")
        services.do_set_rule_actions(request.user, kind, rule_id, body.data["actions"])
        return ok()
