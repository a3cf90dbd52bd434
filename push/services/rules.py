"""Changing a user's push rules (the nine /pushrules operations' writes).

Each change rewrites the user's ``PushRules`` row and their ``m.push_rules`` account data
(the merged ruleset, which /sync sends "when a user changes their push rules") at one
new account_data position, in one transaction holding the user's row lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from accounts.models import User
from accounts.services.account_data import write_account_data
from protocol.push import rules
from push.models import PushRules

PUSH_RULES = "m.push_rules"

Edit = Callable[[dict[str, Any] | None], dict[str, Any]]


def _do_edit(user: User, edit: Edit) -> None:
    user_id = user.user_id
    with transaction.atomic():
        # The user's row is the lock: edits of one user's rules run one at a time.
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        row = PushRules.objects.filter(user_id=user_id).first()
        changes = edit(row.changes if row is not None else None)
        content = {"global": rules.ruleset(user_id, changes)}
        position = write_account_data(user, PUSH_RULES, content)
        if row is None:
            PushRules.objects.create(user_id=user_id, changes=changes, stream_id=position)
        else:
            row.changes, row.stream_id = changes, position
            row.save(update_fields=["changes", "stream_id"])


def do_put_rule(
    user: User,
    kind: str,
    rule_id: str,
    body: dict[str, Any],
    *,
    before: str | None = None,
    after: str | None = None,
) -> None:
    """PUT /pushrules/global/{kind}/{ruleId}: add or replace one of the user's rules."""
    rule = rules.check_rule(kind, rule_id, body)
    _do_edit(user, lambda changes: rules.put_rule(changes, kind, rule, before=before, after=after))


def do_delete_rule(user: User, kind: str, rule_id: str) -> None:
    _do_edit(user, lambda changes: rules.delete_rule(changes, kind, rule_id))


def do_set_rule_enabled(user: User, kind: str, rule_id: str, enabled: bool) -> None:
    _do_edit(user, lambda changes: rules.set_attribute(changes, kind, rule_id, "enabled", enabled))


def do_set_rule_actions(user: User, kind: str, rule_id: str, actions: Any) -> None:
    checked = rules.check_actions(actions)
    _do_edit(user, lambda changes: rules.set_attribute(changes, kind, rule_id, "actions", checked))
