"""trellis: a small command-line Matrix client (standard library only).

Run it as ``trellis`` (the console script) or ``python -m trellis_cli``; ``trellis
--help`` lists the commands. ``login`` and ``register`` keep the homeserver URL and the
access token in ``$XDG_CONFIG_HOME/trellis-cli/session.json`` (readable by its owner
only); the other commands use them.
"""
