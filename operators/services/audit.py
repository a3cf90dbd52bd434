"""The audit log: one entry for every operator action, written with the action."""

from __future__ import annotations

from typing import Any

from operators.models import AuditEntry


def record(
    actor: str, action: str, target: str = "", *, via: str = "api", ip: str = "", **details: Any
) -> AuditEntry:
    """Log that ``actor`` did ``action`` to ``target``. Call it inside the action's own
    transaction, so that an action and its entry are stored together or not at all."""
    return AuditEntry.objects.create(
        actor=actor, action=action, target=target, via=via, ip=ip or "", details=details
    )
