"""Registration tokens (Client-Server API, "Token-authenticated registration").

A token is *reserved* (``pending`` + 1) when a UIA stage accepts it and *used*
(``pending`` - 1, ``completed`` + 1) when the registration it authorised succeeds, so
a token with ``uses_allowed`` cannot be spent twice by concurrent registrations. A
reservation whose UIA session expires unfinished is *released* (``pending`` - 1).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from accounts.clock import now_ms
from accounts.models import RegistrationToken


def is_usable(token: RegistrationToken) -> bool:
    if token.expiry_time_ms is not None and token.expiry_time_ms <= now_ms():
        return False
    return token.uses_allowed is None or token.pending + token.completed < token.uses_allowed


def is_valid(token: str) -> bool:
    row = RegistrationToken.objects.filter(token=token).first()
    return row is not None and is_usable(row)


def do_reserve(token: str) -> bool:
    """Reserve one use of ``token`` for a UIA session; False if it cannot be used."""
    with transaction.atomic():
        row = RegistrationToken.objects.select_for_update().filter(token=token).first()
        if row is None or not is_usable(row):
            return False
        RegistrationToken.objects.filter(pk=row.pk).update(pending=F("pending") + 1)
        return True


def do_complete(token: str) -> None:
    """The registration a reserved use was for has succeeded."""
    RegistrationToken.objects.filter(token=token, pending__gt=0).update(
        pending=F("pending") - 1, completed=F("completed") + 1
    )


def do_release(token: str) -> None:
    """The registration a reserved use was for was abandoned: the use is free again."""
    RegistrationToken.objects.filter(token=token, pending__gt=0).update(pending=F("pending") - 1)
