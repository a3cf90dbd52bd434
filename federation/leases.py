"""Lease tokens that name their holder, for the work one worker does at a time: a room's
inbound queue (rooms.federation.transactions) and a destination's outbound queue
(federation.outbound).

A lease otherwise only ends when its holder releases it or it expires; a worker killed
while holding one (SIGKILL, the machine's OOM killer, a container stopped) would leave
its room or destination waiting until then. The token says which host and process took
it, and that process's lifetime, so a lease whose holder was a process of this host that
is gone is known to be free at once. A holder on another host is taken to be alive: its
lease ends when it expires, as before.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket

from django.db.models import Q

# This host, hashed short (a token fits 32 characters), and this process's lifetime (a
# later process that gets the same process ID is told apart).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_LIFETIME = secrets.token_hex(3)


def new_token() -> str:
    """A fresh lease token naming this process (at most 32 characters)."""
    return f"{_HOST}:{os.getpid()}:{_LIFETIME}:{secrets.token_hex(4)}"


def holder_is_gone(token: str | None) -> bool:
    """The lease's holder was a process of this host that is not running any more. Any
    other token (another host's, another form) is taken to be a live holder's."""
    if not token:
        return False
    parts = token.split(":")
    if len(parts) != 4 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        # This process, or an earlier one that had its process ID.
        return parts[2] != _LIFETIME
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def is_free(token: str | None, until_ts: int | None, now: int) -> bool:
    """A lease (its ``lease_token`` and ``lease_until_ts``) is free at ``now``: never
    taken, released, expired, or held by a process of this host that is gone."""
    return until_ts is None or until_ts < now or holder_is_gone(token)


def free(now: int, holder: str | None = None) -> Q:
    """The rows whose lease is free at ``now``, as :func:`is_free` says, for a conditional
    update that takes it. ``holder``: the row's ``lease_token`` as last read, taken over
    when its process is gone."""
    condition = Q(lease_until_ts__isnull=True) | Q(lease_until_ts__lt=now)
    if holder_is_gone(holder):
        condition |= Q(lease_token=holder)
    return condition
