"""Evaluating push rules (Client-Server API, "Push Rules", "Conditions", "Actions").

Built for the send path, where one event is evaluated for every local member of its
room:

- ``PushEvent`` is what evaluation needs of one event, computed once for all its
  recipients: the flattened event, the room's member count, the sender's power level and
  the room's ``notifications`` power levels. It memoises, per event, every result that
  does not depend on the recipient.
- ``CompiledRules`` is a ruleset compiled once (globs to regular expressions, keys to
  canonical paths) and kept while the user's rules do not change. Conditions naming the
  ruleset's owner (the predefined ``.m.rule.invite_for_me`` and
  ``.m.rule.is_user_mention``) compare against the recipient passed to ``actions``, so
  one compiled ruleset serves every user who has not changed theirs.

For one event and one compiled ruleset, the rules are first narrowed to those whose
recipient-independent conditions hold, up to the first rule that then matches whoever
the recipient is; each recipient only checks the conditions about itself (its ID, its
display name) on that short list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from protocol.push.paths import canonical_path, flatten
from protocol.push.rules import HISTORICAL_ACTIONS, KINDS, is_scalar, parse_member_count

# Power levels, "notifications": "room" defaults to 50 (m.room.power_levels); the spec
# names no other key, and 50 is the level other servers use for any key left out.
DEFAULT_NOTIFICATION_LEVEL = 50
# "A word boundary is defined as the start or end of the value, or any character not in
# the sets [A-Z], [a-z], [0-9] or _."
_WORD_START = r"(?<![A-Za-z0-9_])"
_WORD_END = r"(?![A-Za-z0-9_])"
_ABSENT = object()
_BODY = "content.body"


def _token(value: Any) -> tuple[str, Any] | None:
    """A value as event_property_is / _contains compare it: exactly, types kept apart
    (``true`` is not ``1``), only non-compound canonical JSON values."""
    if not is_scalar(value):
        return None
    return (type(value).__name__, value)


class PushEvent:
    """What evaluation needs of one event, and its per-event memo."""

    __slots__ = (
        "_conditions",
        "_plans",
        "_tokens",
        "flat",
        "notification_levels",
        "room_member_count",
        "sender",
        "sender_power_level",
    )

    def __init__(
        self,
        event: Mapping[str, Any],
        *,
        room_member_count: int,
        sender_power_level: int,
        notification_power_levels: Mapping[str, Any] | None = None,
    ) -> None:
        self.flat = flatten(event)
        sender = event.get("sender")
        self.sender = sender if isinstance(sender, str) else None
        self.room_member_count = room_member_count
        self.sender_power_level = sender_power_level
        self.notification_levels = notification_power_levels or {}
        self._conditions: dict[_Condition, bool] = {}
        self._plans: dict[CompiledRules, tuple[_Rule, ...]] = {}
        self._tokens: dict[str, frozenset[tuple[str, Any]]] = {}

    def value(self, key: str) -> Any:
        """The value at canonical path ``key``, or ``_ABSENT``."""
        return self.flat.get(key, _ABSENT)

    def tokens(self, key: str) -> frozenset[tuple[str, Any]]:
        """The comparable values of the array at ``key`` (empty when not an array)."""
        found = self._tokens.get(key)
        if found is None:
            value = self.flat.get(key)
            items = value if isinstance(value, list) else ()
            found = frozenset(t for t in map(_token, items) if t is not None)
            self._tokens[key] = found
        return found

    def notification_level(self, key: str) -> int:
        level = self.notification_levels.get(key, DEFAULT_NOTIFICATION_LEVEL)
        if isinstance(level, int) and not isinstance(level, bool):
            return level
        # Room versions before 10 allow power levels as strings of digits.
        if isinstance(level, str):
            try:
                return int(level.strip())
            except ValueError:
                pass
        return DEFAULT_NOTIFICATION_LEVEL


# --- conditions -------------------------------------------------------------------------


class _Condition:
    """One compiled condition. ``personal`` ones depend on the recipient."""

    __slots__ = ()
    personal = False

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        raise NotImplementedError


class _Never(_Condition):
    """Unrecognised or malformed: "Unrecognised conditions MUST NOT match any events"."""

    __slots__ = ()

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        return False


class _Literal(_Condition):
    """event_match with a pattern free of globs: the whole string, case-insensitive."""

    __slots__ = ("key", "lowered")

    def __init__(self, key: str, pattern: str) -> None:
        self.key = key
        self.lowered = pattern.lower()

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        value = event.flat.get(self.key)
        return isinstance(value, str) and value.lower() == self.lowered


class _Glob(_Condition):
    """event_match with a glob: the whole value, or for ``content.body`` any substring
    starting and ending at word boundaries."""

    __slots__ = ("key", "regex")

    def __init__(self, key: str, pattern: str) -> None:
        self.key = key
        self.regex = _glob_regex(pattern, words=key == _BODY)

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        value = event.flat.get(self.key)
        return isinstance(value, str) and self.regex.search(value) is not None


class _Exactly(_Condition):
    """The predefined conditions of room and sender rules: the room's or the sender's
    ID, exactly."""

    __slots__ = ("key", "value")

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        return event.flat.get(self.key) == self.value


class _PropertyIs(_Condition):
    __slots__ = ("key", "token")

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.token = _token(value)

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        value = event.flat.get(self.key, _ABSENT)
        return value is not _ABSENT and _token(value) == self.token


class _PropertyContains(_Condition):
    __slots__ = ("key", "token")

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.token = _token(value)

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        return self.token in event.tokens(self.key)


class _MemberCount(_Condition):
    __slots__ = ("number", "operator")

    def __init__(self, operator: str, number: int) -> None:
        self.operator = operator
        self.number = number

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        count, number = event.room_member_count, self.number
        if self.operator == "==":
            return count == number
        if self.operator == "<":
            return count < number
        if self.operator == ">":
            return count > number
        if self.operator == "<=":
            return count <= number
        return count >= number


class _SenderPermission(_Condition):
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        return event.sender_power_level >= event.notification_level(self.key)


class _IsRecipient(_Condition):
    """event_match whose pattern is the owner's user ID (``.m.rule.invite_for_me``):
    the recipient's ID, case-insensitive as event_match is."""

    __slots__ = ("key",)
    personal = True

    def __init__(self, key: str) -> None:
        self.key = key

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        value = event.flat.get(self.key)
        return isinstance(value, str) and value.lower() == user_id.lower()


class _PropertyIsRecipient(_Condition):
    __slots__ = ("key",)
    personal = True

    def __init__(self, key: str) -> None:
        self.key = key

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        return event.flat.get(self.key) == user_id


class _ContainsRecipient(_Condition):
    """event_property_contains whose value is the owner's user ID
    (``.m.rule.is_user_mention``)."""

    __slots__ = ("key",)
    personal = True

    def __init__(self, key: str) -> None:
        self.key = key

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        return ("str", user_id) in event.tokens(self.key)


class _ContainsDisplayName(_Condition):
    """contains_display_name: the recipient's display name in the room as a whole word
    of ``content.body``, case-insensitive."""

    __slots__ = ()
    personal = True

    def test(self, event: PushEvent, user_id: str, display_name: str | None) -> bool:
        if not display_name:
            return False
        body = event.flat.get(_BODY)
        return isinstance(body, str) and _word_regex(display_name).search(body) is not None


def _glob_regex(pattern: str, *, words: bool) -> re.Pattern[str]:
    """Appendices, "Glob-style matching": ``*`` is zero or more characters, ``?`` exactly
    one; the rest is literal."""
    parts: list[str] = []
    for char in pattern:
        if char == "*":
            if not parts or parts[-1] != ".*":
                parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    body = "".join(parts)
    body = _WORD_START + body + _WORD_END if words else f"\\A(?:{body})\\Z"
    return re.compile(body, re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=4096)
def _word_regex(text: str) -> re.Pattern[str]:
    return re.compile(_WORD_START + re.escape(text) + _WORD_END, re.IGNORECASE)


_NEVER = _Never()
_CONTAINS_DISPLAY_NAME = _ContainsDisplayName()


@lru_cache(maxsize=8192)
def _compile_condition(kind: str, key: Any, argument: Any, owner_is_argument: bool) -> _Condition:
    """One condition, interned: equal conditions of different rulesets are one object,
    so their per-event results are memoised once."""
    if kind == "contains_display_name":
        return _CONTAINS_DISPLAY_NAME
    if kind == "room_member_count":
        parsed = parse_member_count(argument) if isinstance(argument, str) else None
        return _NEVER if parsed is None else _MemberCount(*parsed)
    if not isinstance(key, str):
        return _NEVER
    if kind == "sender_notification_permission":
        return _SenderPermission(key)
    path = canonical_path(key)
    if kind == "event_match":
        if not isinstance(argument, str):
            return _NEVER
        if owner_is_argument and path != _BODY:
            return _IsRecipient(path)
        if "*" in argument or "?" in argument or path == _BODY:
            return _Glob(path, argument)
        return _Literal(path, argument)
    if kind in ("event_property_is", "event_property_contains"):
        # ``argument`` is the value as a token: (type name, value).
        if argument is None:
            return _NEVER
        value = argument[1]
        if kind == "event_property_is":
            return _PropertyIsRecipient(path) if owner_is_argument else _PropertyIs(path, value)
        return _ContainsRecipient(path) if owner_is_argument else _PropertyContains(path, value)
    return _NEVER


def compile_condition(condition: Mapping[str, Any], owner: str | None) -> _Condition:
    if not isinstance(condition, Mapping):
        return _NEVER
    kind = condition.get("kind")
    key = condition.get("key")
    if kind == "event_match":
        argument: Any = condition.get("pattern")
    elif kind in ("event_property_is", "event_property_contains"):
        if "value" not in condition:
            return _NEVER
        argument = _token(condition["value"])
    elif kind == "room_member_count":
        argument = condition.get("is")
    else:
        argument = None
    if not isinstance(kind, str) or not _hashable(key) or not _hashable(argument):
        return _NEVER
    is_owner = owner is not None and (
        argument == owner or (isinstance(argument, tuple) and argument == ("str", owner))
    )
    return _compile_condition(kind, key, argument, is_owner)


def _hashable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, tuple))


# --- rules ------------------------------------------------------------------------------


class _Rule:
    __slots__ = ("actions", "personal", "rule_id", "shared")

    def __init__(self, rule_id: str, actions: list[Any], conditions: Sequence[_Condition]) -> None:
        self.rule_id = rule_id
        self.actions = actions
        self.shared = tuple(c for c in conditions if not c.personal)
        self.personal = tuple(c for c in conditions if c.personal)


def _rule_conditions(kind: str, rule: Mapping[str, Any], owner: str | None) -> list[_Condition]:
    rule_id = rule["rule_id"]
    if kind in ("override", "underride"):
        conditions = rule.get("conditions", [])
        if not isinstance(conditions, list):
            return [_NEVER]
        return [compile_condition(c, owner) for c in conditions]
    if kind == "content":
        pattern = rule.get("pattern")
        if not isinstance(pattern, str):
            return [_NEVER]
        return [compile_condition({"kind": "event_match", "key": _BODY, "pattern": pattern}, None)]
    if kind == "room":
        return [_Exactly("room_id", rule_id)]
    if kind == "sender":
        return [_Exactly("sender", rule_id)]
    return [_NEVER]


def strip_actions(actions: Any) -> list[Any]:
    """A rule's actions without the historical ones ("MUST ignore these actions")."""
    if not isinstance(actions, list):
        return []
    return [a for a in actions if not (isinstance(a, str) and a in HISTORICAL_ACTIONS)]


class CompiledRules:
    """A ruleset (kind -> rules, as GET /pushrules/global/ returns it), compiled for
    evaluation in the kinds' order; disabled rules are left out. ``owner`` is the user
    whose ruleset it is: conditions naming them test the recipient instead, so a
    ruleset compiled once serves every user whose rules are the same but for their ID.
    Compiled rulesets are immutable and may be shared between threads."""

    __slots__ = ("rules", "uses_display_name")

    def __init__(
        self, ruleset: Mapping[str, Sequence[Mapping[str, Any]]], owner: str | None = None
    ) -> None:
        compiled: list[_Rule] = []
        for kind in KINDS:
            for rule in ruleset.get(kind, ()):
                if not rule.get("enabled", True) or not isinstance(rule.get("rule_id"), str):
                    continue
                conditions = _rule_conditions(kind, rule, owner)
                if _NEVER in conditions:
                    continue
                compiled.append(
                    _Rule(rule["rule_id"], strip_actions(rule.get("actions")), conditions)
                )
        self.rules = tuple(compiled)
        # Whether ``actions`` reads the recipient's display name: the caller may skip
        # looking it up when none of the rulesets it evaluates does.
        self.uses_display_name = any(_CONTAINS_DISPLAY_NAME in r.personal for r in compiled)

    def _plan(self, event: PushEvent) -> tuple[_Rule, ...]:
        """The rules whose recipient-independent conditions hold for ``event``, up to
        the first that needs nothing of the recipient (memoised on the event)."""
        plan = event._plans.get(self)
        if plan is not None:
            return plan
        memo = event._conditions
        candidates: list[_Rule] = []
        for rule in self.rules:
            holds = True
            for condition in rule.shared:
                result = memo.get(condition)
                if result is None:
                    result = memo[condition] = condition.test(event, "", None)
                if not result:
                    holds = False
                    break
            if holds:
                candidates.append(rule)
                if not rule.personal:
                    break
        plan = event._plans[self] = tuple(candidates)
        return plan

    def match(self, event: PushEvent, user_id: str, display_name: str | None = None) -> str | None:
        """The ID of the rule that decides for ``user_id``, or None."""
        rule = self._first(event, user_id, display_name)
        return None if rule is None else rule.rule_id

    def actions(
        self, event: PushEvent, user_id: str, display_name: str | None = None
    ) -> list[Any] | None:
        """The first matching rule's actions for ``user_id`` (the list is shared: do not
        change it), or None when no rule matches. ``display_name`` is the user's in the
        room, for ``contains_display_name``. The sender's own events never match:
        "Homeservers MUST NOT notify the Push Gateway for events that the user has sent
        themselves"."""
        rule = self._first(event, user_id, display_name)
        return None if rule is None else rule.actions

    def _first(self, event: PushEvent, user_id: str, display_name: str | None) -> _Rule | None:
        if user_id == event.sender:
            return None
        for rule in self._plan(event):
            for condition in rule.personal:
                if not condition.test(event, user_id, display_name):
                    break
            else:
                return rule
        return None


# --- actions ----------------------------------------------------------------------------


def notifies(actions: Sequence[Any] | None) -> tuple[bool, bool]:
    """(notify, highlight) for a rule's actions. "If a highlight tweak is given with no
    value, its value is defined to be true. If no highlight tweak is given at all then
    the value of highlight is defined to be false." """
    if not actions:
        return False, False
    notify = False
    highlight = False
    for action in actions:
        if action == "notify":
            notify = True
        elif isinstance(action, Mapping) and action.get("set_tweak") == "highlight":
            highlight = action.get("value", True) is True
    return notify, highlight


def tweaks(actions: Sequence[Any] | None) -> dict[str, Any]:
    """The ``tweaks`` a notification carries to the push gateway: each ``set_tweak``'s
    value, the highlight tweak true when given without one."""
    found: dict[str, Any] = {}
    for action in actions or ():
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            if "value" in action:
                found[name] = action["value"]
            elif name == "highlight":
                found[name] = True
    return found
