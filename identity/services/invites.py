"""Invitations to addresses nobody has bound yet (identity-service-api.md, "Invitation
storage", "Ephemeral invitation signing"), their keys, and their delivery to the
homeserver of whoever binds the address (server-server-api.md, "Third-party invites":
PUT /_matrix/federation/v1/3pid/onbind)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from accounts.services import mail
from federation import client
from identity.keys import identity_server_name, identity_signing_key
from identity.models import Association, EphemeralKey, Medium, PendingInvite
from protocol.errors import MatrixError
from protocol.identifiers import (
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    parse_user_id,
)
from protocol.signing import (
    encode_verify_key_base64,
    generate_signing_key,
    sign_json,
    signing_key_from_seed,
)
from protocol.threepids import canonical_email, redacted_email
from protocol.unpadded_base64 import decode_base64, decode_base64_url_safe, encode_base64

logger = logging.getLogger(__name__)

ONBIND_PATH = "/_matrix/federation/v1/3pid/onbind"
PUBKEY_PATH = "_matrix/identity/v2/pubkey"
# The optional fields of store-invite the invitation mail may show.
INVITE_DETAILS = (
    "room_alias",
    "room_avatar_url",
    "room_join_rules",
    "room_name",
    "sender_display_name",
    "sender_avatar_url",
    "room_type",
)


class OnbindFailed(Exception):
    """The homeserver could not be reached or did not take the invitations: retry."""


# --- keys -------------------------------------------------------------------------------


def long_term_public_key() -> str:
    return encode_verify_key_base64(identity_signing_key().verify_key)


def public_key(key_id: str) -> str:
    """GET /pubkey/{keyId}: the long-term key; 404 M_NOT_FOUND for any other ID."""
    if key_id != identity_signing_key().key_id:
        raise MatrixError("M_NOT_FOUND", "The public key was not found")
    return long_term_public_key()


def is_valid_long_term_key(key: str) -> bool:
    return key == long_term_public_key()


def is_valid_ephemeral_key(key: str) -> bool:
    return EphemeralKey.objects.filter(public_key=key, revoked_at_ms__isnull=True).exists()


# --- storing and signing ----------------------------------------------------------------


def key_validity_base(request_host: str) -> str:
    """Where the homeservers of an invited room check this service's keys: the operator's
    public base URL when it is https, else https at the host the store-invite request
    was addressed to (the ``id_server`` the inviter's client named, which homeservers
    reach as ``https://<id_server>``). Homeservers follow only https key validity URLs;
    the default public base URL (``http://<TRELLIS_BIND>``) is none they could use."""
    if settings.PUBLIC_BASEURL.startswith("https://"):
        return str(settings.PUBLIC_BASEURL)
    if is_valid_server_name(request_host):
        return f"https://{request_host}/"
    return str(settings.PUBLIC_BASEURL)


def do_store_invite(
    *,
    account_user_id: str,
    medium: str,
    address: str,
    room_id: str,
    sender: str,
    details: dict[str, str],
    request_host: str,
) -> dict[str, Any]:
    """POST /store-invite: keep the invitation, mail it to the address, and answer with
    its token, the keys that will sign for it (with key validity URLs under
    ``key_validity_base(request_host)``) and a redacted display name.

    400 M_UNRECOGNIZED for a medium other than email, M_THREEPID_IN_USE (with ``mxid``)
    if the address is bound already; 403 M_FORBIDDEN when the token's user is not the
    ``sender``.
    """
    if medium != Medium.EMAIL:
        raise MatrixError("M_UNRECOGNIZED", "Invitations go to email addresses only", status=400)
    canonical = canonical_email(address)
    if canonical is None:
        raise MatrixError("M_INVALID_EMAIL", "The email address is not valid")
    if not is_valid_room_id(room_id):
        raise MatrixError("M_INVALID_PARAM", "room_id is not a room ID")
    if not is_valid_user_id(sender):
        raise MatrixError("M_INVALID_PARAM", "sender is not a user ID")
    if sender != account_user_id:
        raise MatrixError("M_FORBIDDEN", "You may only store invitations you send")
    bound = Association.objects.filter(medium=medium, address=canonical).first()
    if bound is not None:
        raise MatrixError("M_THREEPID_IN_USE", "Binding already known", mxid=bound.mxid)
    ephemeral = generate_signing_key("0")
    token = secrets.token_urlsafe(24)
    now = now_ms()
    with transaction.atomic():
        key_row = EphemeralKey.objects.create(
            public_key=encode_verify_key_base64(ephemeral.verify_key), created_at_ms=now
        )
        PendingInvite.objects.create(
            medium=medium,
            address=canonical,
            room_id=room_id,
            sender=sender,
            token=token,
            ephemeral_key=key_row,
            created_at_ms=now,
        )
        # As Sydent does, the mail carries the ephemeral private key (never stored here),
        # for clients that have POST /sign-ed25519 sign with it.
        mail.send_templated(
            canonical,
            "identity_invite",
            {
                "room_id": room_id,
                "sender": sender,
                "token": token,
                "ephemeral_private_key": encode_base64(ephemeral.seed),
                **{k: v for k, v in details.items() if k in INVITE_DETAILS},
            },
        )
    base = f"{key_validity_base(request_host)}{PUBKEY_PATH}"
    return {
        "token": token,
        "public_keys": [
            {"public_key": long_term_public_key(), "key_validity_url": f"{base}/isvalid"},
            {"public_key": key_row.public_key, "key_validity_url": f"{base}/ephemeral/isvalid"},
        ],
        "display_name": redacted_email(canonical),
    }


def _decode_private_key(private_key: str) -> bytes:
    for decode in (decode_base64, decode_base64_url_safe):
        try:
            seed = decode(private_key)
        except ValueError:
            continue
        if len(seed) == 32:
            return seed
    raise MatrixError("M_INVALID_PARAM", "private_key is not an unpadded base64 ed25519 key")


def do_sign_ed25519(mxid: str, token: str, private_key: str) -> dict[str, Any]:
    """POST /sign-ed25519: ``{mxid, sender, token}`` of a stored invitation, signed with
    the given (ephemeral) private key; 404 M_UNRECOGNIZED for an unknown token."""
    if not is_valid_user_id(mxid):
        raise MatrixError("M_INVALID_PARAM", "mxid is not a valid user ID")
    seed = _decode_private_key(private_key)
    invite = PendingInvite.objects.filter(token=token).first()
    if invite is None:
        raise MatrixError("M_UNRECOGNIZED", "Didn't recognize token", status=404)
    key = signing_key_from_seed(seed, "0")
    return sign_json(
        {"mxid": mxid, "sender": invite.sender, "token": invite.token},
        identity_server_name(),
        key,
    )


# --- delivery on bind -------------------------------------------------------------------


def onbind_body(
    medium: str, address: str, mxid: str, invites: list[PendingInvite]
) -> dict[str, Any]:
    """The body of PUT /3pid/onbind: each invitation with its ``signed`` object, signed with
    the long-term key (identity-service-api.md: "MUST be signed with a long-term private
    key for the identity server")."""
    key = identity_signing_key()
    name = identity_server_name()
    return {
        "medium": medium,
        "address": address,
        "mxid": mxid,
        "invites": [
            {
                "medium": invite.medium,
                "address": invite.address,
                "mxid": mxid,
                "room_id": invite.room_id,
                "sender": invite.sender,
                "signed": sign_json({"mxid": mxid, "token": invite.token}, name, key),
            }
            for invite in invites
        ],
    }


def deliver_bound_invites(medium: str, address: str, mxid: str) -> int:
    """Send the undelivered invitations of an address bound to ``mxid`` to its homeserver;
    mark them delivered (and retire their ephemeral keys) once it answered 200. Raises
    OnbindFailed otherwise, for the task to retry. Safe to run twice: a homeserver may
    get an invitation again, never loses one."""
    invites = list(
        PendingInvite.objects.filter(
            medium=medium, address=address, mxid=mxid, delivered_at_ms__isnull=True
        ).order_by("pk")
    )
    if not invites:
        return 0
    destination = parse_user_id(mxid).domain
    body = onbind_body(medium, address, mxid, invites)
    try:
        response = client.send_request(destination, "PUT", ONBIND_PATH, content=body, signed=False)
    except client.FederationError as exc:
        raise OnbindFailed(f"cannot reach {destination}: {exc}") from exc
    if response.status != 200:
        raise OnbindFailed(f"{destination} answered the onbind with {response.status}")
    now = now_ms()
    with transaction.atomic():
        PendingInvite.objects.filter(pk__in=[i.pk for i in invites]).update(delivered_at_ms=now)
        EphemeralKey.objects.filter(pk__in=[i.ephemeral_key_id for i in invites]).update(
            revoked_at_ms=now
        )
    logger.info("delivered %d invitation(s) for %s to %s", len(invites), mxid, destination)
    return len(invites)


def undelivered_bindings() -> list[tuple[str, str, str]]:
    """(medium, address, mxid) of every bound address with invitations not delivered."""
    rows = (
        PendingInvite.objects.filter(delivered_at_ms__isnull=True)
        .exclude(mxid="")
        .values_list("medium", "address", "mxid")
        .distinct()
    )
    return list(rows)
