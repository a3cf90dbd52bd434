"""Associations between 3PIDs and Matrix user IDs: binding one once the address is proven,
signing it, and removing it again (identity-service-api.md, "Establishing
associations")."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.clock import now_ms
from identity.keys import identity_server_name, identity_signing_key
from identity.models import Association, PendingInvite
from identity.services.lookup import lookup_pepper
from identity.services.validation import validated_session
from protocol.errors import MatrixError
from protocol.identifiers import is_valid_user_id
from protocol.signing import sign_json
from protocol.threepids import lookup_hash

# How long a signed association claims to hold (Sydent's choice: a hundred years).
ASSOCIATION_LIFETIME_MS = 100 * 365 * 24 * 3600 * 1000


def check_mxid(mxid: str) -> None:
    if not is_valid_user_id(mxid):
        raise MatrixError("M_INVALID_PARAM", "mxid is not a valid user ID")


def signed_association(association: Association) -> dict[str, Any]:
    """The association as the spec publishes it, signed with the long-term key."""
    return sign_json(
        {
            "address": association.address,
            "medium": association.medium,
            "mxid": association.mxid,
            "not_before": association.not_before,
            "not_after": association.not_after,
            "ts": association.ts,
        },
        identity_server_name(),
        identity_signing_key(),
    )


def do_bind(sid: str, client_secret: str, mxid: str, *, account_user_id: str) -> dict[str, Any]:
    """POST /3pid/bind: publish the session's address as ``mxid``'s.

    A user binds addresses to their own user ID only (403 M_FORBIDDEN for another's).
    Invitations stored for the address are handed to ``mxid``'s homeserver once this
    commits (identity-service-api.md, "Invitation storage").
    """
    check_mxid(mxid)
    if mxid != account_user_id:
        raise MatrixError("M_FORBIDDEN", "You may only bind addresses to your own user ID")
    session = validated_session(sid, client_secret)
    now = now_ms()
    with transaction.atomic():
        association, _ = Association.objects.select_for_update().update_or_create(
            medium=session.medium,
            address=session.address,
            defaults={
                "mxid": mxid,
                "lookup_hash": lookup_hash(session.address, session.medium, lookup_pepper()),
                "ts": now,
                "not_before": now,
                "not_after": now + ASSOCIATION_LIFETIME_MS,
            },
        )
        claimed = PendingInvite.objects.filter(
            medium=session.medium, address=session.address, mxid=""
        ).update(mxid=mxid, bound_at_ms=now)
        if claimed:
            from identity.tasks import deliver_invites

            medium, address = session.medium, session.address
            transaction.on_commit(lambda: deliver_invites.delay(medium, address, mxid))
    return signed_association(association)


def do_unbind(medium: str, address: str, mxid: str) -> None:
    """POST /3pid/unbind, once the caller proved the right to: the association of the
    address with ``mxid`` is gone (nothing happens if there is none)."""
    Association.objects.filter(medium=medium, address=address, mxid=mxid).delete()


def check_unbind_by_session(sid: str, client_secret: str, medium: str, address: str) -> None:
    """An unbind authorised by a validated session of the same 3PID; 403 otherwise."""
    session = validated_session(sid, client_secret)
    if (session.medium, session.address) != (medium, address):
        raise MatrixError("M_FORBIDDEN", "The session validated another third-party identifier")
