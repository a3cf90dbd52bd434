"""Account deactivation, by the user (POST /account/deactivate) or an operator."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import threepid_binding
from accounts.signals import user_deactivated


def do_deactivate_account(user: User, *, erase: bool = False, id_server: str | None = None) -> str:
    """Deactivate ``user``: no login ever again, every device and session removed, every
    third-party identifier removed from the account.

    ``erase`` also clears the profile and marks the account erased (Client-Server API,
    "Account deactivation"): its events are then served redacted to those who were not
    joined when they were sent, in timelines, room state and ``prev_content`` alike
    (``rooms.selectors.filter_visible`` and ``as_served``).
    Listeners of ``user_deactivated`` (rooms) make the user leave every room in the
    same transaction. First, with no transaction open, the addresses bound at identity
    servers through us are unbound (from ``id_server`` if given); the result is the
    ``id_server_unbind_result`` of POST /account/deactivate.
    """
    unbind_result = threepid_binding.do_unbind_all(user, id_server)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.is_active = False
        locked.deactivated_at = timezone.now()
        locked.set_unusable_password()
        fields = ["is_active", "deactivated_at", "password"]
        if erase:
            locked.profile = {}
            locked.is_erased = True
            fields += ["profile", "is_erased"]
        locked.save(update_fields=fields)
        locked.devices.all().delete()
        # Its OpenID tokens would still prove the identity to integrations.
        locked.openid_tokens.all().delete()
        # An address of a deactivated account must not log in or reset a password.
        locked.threepids.all().delete()
        if erase:
            locked.account_data.all().delete()
        user_deactivated.send(sender=User, user_id=locked.user_id)
        user.is_active = False
    return unbind_result
