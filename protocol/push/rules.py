"""Push rules: kinds, the predefined rules, a client's rule checked, a user's ruleset.

Client-Server API, "Push Rules" and "Predefined Rules" (v1.19). A user's ruleset is the
server-default rules merged with what the user changed, kept as a *changes* document:

    {"custom": {kind: [rule, ...]},                  # the user's own rules, in order
     "defaults": {kind: {rule_id: {"enabled": bool, "actions": [...]}}}}

(either part may be absent; a user who changed nothing has no document at all). A
custom rule is kept as the API returns it, without ``default``. The edits below are pure
functions from one document to the next, so the storage only has to keep it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import MatrixError, bad_json, invalid_param, not_found

# "The different kinds of rule, in the order that they are checked".
KINDS: tuple[str, ...] = ("override", "content", "room", "sender", "underride")
# Historical Actions: "Clients and homeservers MUST ignore these actions".
HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})
# Predefined Rules: "Unlike other server-default rules, this one has always a higher
# priority than other rules, even user defined ones."
MASTER = ".m.rule.master"

# Limits on what one rule may carry, so a ruleset stays small enough to evaluate on
# every event (the spec sets none; Synapse and conduwuit set none either, but neither
# has to compile a client's rules per send).
MAX_CONDITIONS = 32
MAX_ACTIONS = 32
MAX_RULE_ID_LENGTH = 255
MAX_PATTERN_LENGTH = 1024
MAX_CUSTOM_RULES = 500
# The whole changes document, as JSON: the merged ruleset goes to every device of the
# user in /sync on each change.
MAX_CHANGES_BYTES = 128 * 1024

_SOUND_DEFAULT: dict[str, Any] = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT: dict[str, Any] = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any]) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": rule_id != MASTER,
        "conditions": conditions,
        "actions": actions,
    }


def predefined_rules(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The server-default rules of each kind for ``user_id``, in the spec's order (fresh
    dicts: callers may change them)."""
    override = [
        _rule(MASTER, [], []),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", user_id),
            ],
            ["notify", dict(_SOUND_DEFAULT)],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": user_id,
                }
            ],
            ["notify", dict(_SOUND_DEFAULT), dict(_HIGHLIGHT)],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ]
    underride = [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
            ["notify", dict(_SOUND_DEFAULT)],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
            ["notify", dict(_SOUND_DEFAULT)],
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ]
    return {"override": override, "content": [], "room": [], "sender": [], "underride": underride}


PREDEFINED_IDS: dict[str, frozenset[str]] = {
    kind: frozenset(rule["rule_id"] for rule in rules)
    for kind, rules in predefined_rules("@user:example.org").items()
}


# --- the merged ruleset ----------------------------------------------------------------


def ruleset(user_id: str, changes: Mapping[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """The user's ruleset as GET /pushrules/global/ returns it: per kind, the user's
    rules before the server-default ones, except ``.m.rule.master`` first of all."""
    merged = predefined_rules(user_id)
    if not changes:
        return merged
    custom = changes.get("custom") or {}
    tweaked = changes.get("defaults") or {}
    for kind in KINDS:
        defaults = merged[kind]
        for rule in defaults:
            change = tweaked.get(kind, {}).get(rule["rule_id"])
            if change:
                if "enabled" in change:
                    rule["enabled"] = change["enabled"]
                if "actions" in change:
                    rule["actions"] = copy.deepcopy(change["actions"])
        own = [{**copy.deepcopy(rule), "default": False} for rule in custom.get(kind, ())]
        head = [rule for rule in defaults if rule["rule_id"] == MASTER]
        tail = [rule for rule in defaults if rule["rule_id"] != MASTER]
        merged[kind] = head + own + tail
    return merged


def find_rule(
    rules: Mapping[str, Sequence[Mapping[str, Any]]], kind: str, rule_id: str
) -> dict[str, Any]:
    """One rule of a ruleset, or M_NOT_FOUND."""
    for rule in rules.get(check_kind(kind), ()):
        if rule["rule_id"] == rule_id:
            return dict(rule)
    raise not_found("The push rule was not found.")


# --- checking what a client sent -------------------------------------------------------


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}")
    return kind


def check_new_rule_id(rule_id: str) -> None:
    """PUT /pushrules/global/{kind}/{ruleId}: "If the string starts with a dot ("."), the
    request MUST be rejected as this is reserved for server-default rules. Slashes ("/")
    and backslashes ("\\") are also not allowed." Nothing else is refused: "The
    ``rule_id`` is a unique string within the kind of rule". A room rule whose ID is not
    a room ID (or a sender rule's not a user ID) is kept and matches no event, as the
    rule's ID is its condition."""
    if not rule_id or len(rule_id) > MAX_RULE_ID_LENGTH:
        raise invalid_param("Invalid rule ID")
    if rule_id.startswith("."):
        raise invalid_param("Rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise invalid_param("Rule IDs may not contain slashes or backslashes")


def check_actions(actions: Any) -> list[Any]:
    """A rule's actions as the client sent them. Historical ones (``dont_notify``,
    ``coalesce``) are accepted and kept, so the client reads back what it wrote; the
    evaluator ignores them ("Historical Actions": a rule with ``["dont_notify"]`` MUST be
    equivalent to a rule with an empty actions array)."""
    if not isinstance(actions, list):
        raise bad_json("'actions' must be an array")
    if len(actions) > MAX_ACTIONS:
        raise invalid_param(f"A push rule may have at most {MAX_ACTIONS} actions")
    checked: list[Any] = []
    for action in actions:
        if isinstance(action, str):
            if action != "notify" and action not in HISTORICAL_ACTIONS:
                raise invalid_param(f"Unknown action {action!r}")
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str):
                raise invalid_param("An action object must be a 'set_tweak'")
        else:
            raise bad_json("An action must be a string or an object")
        checked.append(action)
    return checked


def check_conditions(conditions: Any) -> list[dict[str, Any]]:
    """An override or underride rule's conditions. A condition of an unknown kind is
    kept: it never matches ("effectively making the push rule disabled"). Known kinds
    must carry their parameters, with the types the spec gives."""
    if not isinstance(conditions, list):
        raise bad_json("'conditions' must be an array")
    if len(conditions) > MAX_CONDITIONS:
        raise invalid_param(f"A push rule may have at most {MAX_CONDITIONS} conditions")
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise bad_json("A condition must be an object with a string 'kind'")
        _check_condition(condition)
    return conditions


_SCALAR_TYPES = (str, int, bool, type(None))
MAX_SAFE_INTEGER = 2**53 - 1


def is_scalar(value: Any) -> bool:
    """A non-compound canonical JSON value: string, integer in [-(2**53)+1, (2**53)-1],
    boolean or null."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return isinstance(value, int) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _check_condition(condition: dict[str, Any]) -> None:
    kind = condition["kind"]

    def require_str(name: str) -> None:
        if not isinstance(condition.get(name), str):
            raise bad_json(f"A {kind} condition needs a string '{name}'")

    if kind == "event_match":
        require_str("key")
        require_str("pattern")
        if len(condition["pattern"]) > MAX_PATTERN_LENGTH:
            raise invalid_param("Pattern too long")
    elif kind in ("event_property_is", "event_property_contains"):
        require_str("key")
        if "value" not in condition or not is_scalar(condition["value"]):
            raise bad_json(
                f"A {kind} condition needs a 'value': a string, an integer, a boolean or null"
            )
    elif kind == "room_member_count":
        require_str("is")
        if parse_member_count(condition["is"]) is None:
            raise invalid_param("'is' must be an integer, optionally after ==, <, >, <= or >=")
    elif kind == "sender_notification_permission":
        require_str("key")


def parse_member_count(spec: str) -> tuple[str, int] | None:
    """``room_member_count``'s ``is``: "A decimal integer optionally prefixed by one of,
    ==, <, >, >= or <=. [...] If no prefix is present, this parameter defaults to ==."
    None when malformed."""
    operator = "=="
    for prefix in ("==", "<=", ">=", "<", ">"):
        if spec.startswith(prefix):
            operator = prefix
            spec = spec[len(prefix) :]
            break
    if not spec.isascii() or not spec.isdigit():
        return None
    return operator, int(spec)


def check_rule(kind: str, rule_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The rule stored for PUT /pushrules/global/{kind}/{ruleId} with ``body``: enabled
    ("When creating push rules, they MUST be enabled by default"), with the parameters
    its kind takes and no others."""
    check_kind(kind)
    check_new_rule_id(rule_id)
    if "actions" not in body:
        raise MatrixError("M_MISSING_PARAM", "Missing 'actions'")
    rule: dict[str, Any] = {
        "rule_id": rule_id,
        "enabled": True,
        "actions": check_actions(body["actions"]),
    }
    if kind in ("override", "underride"):
        rule["conditions"] = check_conditions(body.get("conditions", []))
    elif kind == "content":
        pattern = body.get("pattern")
        if pattern is None:
            raise MatrixError("M_MISSING_PARAM", "A content rule needs a 'pattern'")
        if not isinstance(pattern, str):
            raise bad_json("'pattern' must be a string")
        if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise invalid_param("Invalid pattern")
        rule["pattern"] = pattern
    return rule


# --- editing a user's changes ----------------------------------------------------------


def check_changes_size(changes: Mapping[str, Any]) -> None:
    """413 M_TOO_LARGE when the user's changes outgrow ``MAX_CHANGES_BYTES``."""
    size = len(json.dumps(changes, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_CHANGES_BYTES:
        raise MatrixError(
            "M_TOO_LARGE", f"Push rules are limited to {MAX_CHANGES_BYTES} bytes of JSON"
        )


def _copy(changes: Mapping[str, Any] | None) -> dict[str, Any]:
    document = copy.deepcopy(dict(changes or {}))
    document.setdefault("custom", {})
    document.setdefault("defaults", {})
    return document


def _relative_rule_error(rule_id: str) -> MatrixError:
    # The OpenAPI's 400 example: "before/after rule not found: someRuleId", M_UNKNOWN.
    return MatrixError("M_UNKNOWN", f"before/after rule not found: {rule_id}")


def put_rule(
    changes: Mapping[str, Any] | None,
    kind: str,
    rule: dict[str, Any],
    *,
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """Add ``rule`` (checked by :func:`check_rule`) or replace the user's rule of the same
    ID. ``before``/``after`` name another of the user's rules of the kind ("It is not
    possible to add a rule relative to a predefined server rule"); with both, ``before``
    decides. Without either a new rule goes first among the user's rules of its kind and
    a replaced one keeps its place."""
    document = _copy(changes)
    rules: list[dict[str, Any]] = document["custom"].setdefault(kind, [])
    rule_id = rule["rule_id"]
    position = next((i for i, old in enumerate(rules) if old["rule_id"] == rule_id), None)
    anchor = before or after
    if anchor:
        if anchor == rule_id:
            raise _relative_rule_error(anchor)
        others = [old for old in rules if old["rule_id"] != rule_id]
        index = next((i for i, old in enumerate(others) if old["rule_id"] == anchor), None)
        if index is None:
            raise _relative_rule_error(anchor)
        others.insert(index if before else index + 1, rule)
        rules[:] = others
    elif position is not None:
        rules[position] = rule
    else:
        if sum(len(kind_rules) for kind_rules in document["custom"].values()) >= MAX_CUSTOM_RULES:
            raise MatrixError(
                "M_UNKNOWN", f"A user may have at most {MAX_CUSTOM_RULES} push rules"
            )
        rules.insert(0, rule)
    return document


def delete_rule(changes: Mapping[str, Any] | None, kind: str, rule_id: str) -> dict[str, Any]:
    """Remove one of the user's rules. Server-default rules cannot be deleted (their
    ``enabled`` flag turns them off)."""
    check_kind(kind)
    if rule_id in PREDEFINED_IDS[kind]:
        raise invalid_param("Server-default push rules cannot be deleted")
    document = _copy(changes)
    rules: list[dict[str, Any]] = document["custom"].get(kind, [])
    kept = [rule for rule in rules if rule["rule_id"] != rule_id]
    if len(kept) == len(rules):
        raise not_found("The push rule was not found.")
    document["custom"][kind] = kept
    return document


def set_attribute(
    changes: Mapping[str, Any] | None, kind: str, rule_id: str, name: str, value: Any
) -> dict[str, Any]:
    """Set ``enabled`` or ``actions`` (already checked) of a rule, the user's own or a
    server-default one."""
    check_kind(kind)
    document = _copy(changes)
    if rule_id in PREDEFINED_IDS[kind]:
        tweaks = document["defaults"].setdefault(kind, {}).setdefault(rule_id, {})
        tweaks[name] = value
        return document
    for rule in document["custom"].get(kind, []):
        if rule["rule_id"] == rule_id:
            rule[name] = value
            return document
    raise not_found("The push rule was not found.")
