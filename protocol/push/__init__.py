"""Push rules (Client-Server API, "Push Notifications"): pure and framework-free.

- ``paths``: dot-separated property paths with the spec's escaping, and the flattened
  event they index ("Dot-separated property paths", appendices).
- ``rules``: the kinds, the predefined (server-default) rules in the spec's order, the
  checks a rule from a client must pass, and the merge of a user's changes with the
  server-default rules into the ruleset GET /pushrules returns.
- ``evaluator``: ``CompiledRules`` (a ruleset compiled once), ``PushEvent`` (what
  evaluation needs of one event, computed once for all its recipients), ``notifies``
  and ``tweaks`` (what a list of actions means).
"""
