"""Receivers of account signals: a deactivated account keeps no key backup."""

from __future__ import annotations

from typing import Any

from keybackup.services import do_delete_all_backups


def delete_backups_on_deactivation(sender: Any, user_id: str, **kwargs: Any) -> None:
    """Delete every key backup of a deactivated user, as Synapse does, in the
    deactivation's transaction: the encrypted keys serve nobody once the account can
    never log in again."""
    do_delete_all_backups(user_id)
