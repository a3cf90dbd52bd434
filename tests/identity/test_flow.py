"""The identity service end to end, as a client and a homeserver use it: register with a
real OpenID token, verify an email through the mailed link, bind it, be found by a hashed
lookup; a stored invitation reaches the homeserver of whoever binds the address."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core import mail

from identity.models import PendingInvite
from protocol.signing import decode_verify_key_bytes, verify_signed_json
from protocol.threepids import lookup_hash
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import FakeNetwork, json_response
from tests.identity.helpers import IS, bind_email, is_token, last_link, request_email_token


def verify_with_published_key(api: MatrixTestClient, signed: dict[str, Any]) -> None:
    """Check ``signed`` with the key GET /pubkey/ed25519:0 publishes, and that
    /pubkey/isvalid vouches for that key."""
    published = api.get(f"{IS}/pubkey/ed25519:0")
    assert published.status == 200
    key = published.body["public_key"]
    assert api.get(f"{IS}/pubkey/isvalid?public_key={quote(key)}").body == {"valid": True}
    verify_signed_json(signed, settings.SERVER_NAME, decode_verify_key_bytes("ed25519:0", key))


def test_register_validate_bind_and_be_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    alice_is = is_token(api, alice)
    assert api.get(f"{IS}/account", token=alice_is).body == {"user_id": alice.user_id}

    response = request_email_token(api, alice_is, "Alice@Example.org")
    assert response.status == 200
    sid = response.body["sid"]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.org"]
    # Not yet validated.
    pending = api.get(f"{IS}/3pid/getValidated3pid?sid={sid}&client_secret=s3cret", token=alice_is)
    assert (pending.status, pending.errcode) == (400, "M_SESSION_NOT_VALIDATED")

    page = api.get(last_link("alice@example.org"))
    assert page.status == 200
    assert b"alice@example.org" in page.body

    validated = api.get(
        f"{IS}/3pid/getValidated3pid?sid={sid}&client_secret=s3cret", token=alice_is
    )
    assert validated.status == 200
    assert validated.body["medium"] == "email"
    assert validated.body["address"] == "alice@example.org"
    assert isinstance(validated.body["validated_at"], int)

    bound = api.post(
        f"{IS}/3pid/bind",
        {"sid": sid, "client_secret": "s3cret", "mxid": alice.user_id},
        token=alice_is,
    )
    assert bound.status == 200
    association = bound.body
    assert association["mxid"] == alice.user_id
    assert association["address"] == "alice@example.org"
    assert association["medium"] == "email"
    assert association["not_before"] <= association["ts"] < association["not_after"]
    verify_with_published_key(api, association)

    bob_is = is_token(api, bob)
    details = api.get(f"{IS}/hash_details", token=bob_is).body
    assert "sha256" in details["algorithms"]
    pepper = details["lookup_pepper"]
    wanted = lookup_hash("alice@example.org", "email", pepper)
    unknown = lookup_hash("nobody@example.org", "email", pepper)
    found = api.post(
        f"{IS}/lookup",
        {"algorithm": "sha256", "pepper": pepper, "addresses": [wanted, unknown]},
        token=bob_is,
    )
    assert found.status == 200
    assert found.body == {"mappings": {wanted: alice.user_id}}

    plain = api.post(
        f"{IS}/lookup",
        {"algorithm": "none", "pepper": pepper, "addresses": ["alice@example.org email"]},
        token=bob_is,
    )
    assert plain.body == {"mappings": {"alice@example.org email": alice.user_id}}


def test_a_stored_invite_is_delivered_on_bind(
    api: MatrixTestClient, alice: Persona, bob: Persona, network: FakeNetwork
) -> None:
    # Our own homeserver, as the identity service reaches it: over federation.
    onbinds: list[dict[str, Any]] = []

    def homeserver(method: str, path: str, body: Any) -> Any:
        if (method, path) == ("PUT", "/_matrix/federation/v1/3pid/onbind"):
            onbinds.append(body)
            return json_response({})
        return None

    network.add(settings.SERVER_NAME, handler=homeserver)
    bob_is = is_token(api, bob)
    stored = api.post(
        f"{IS}/store-invite",
        {
            "medium": "email",
            "address": "alice@example.org",
            "room_id": "!room:example.org",
            "sender": bob.user_id,
            "room_name": "Tea",
            "sender_display_name": "Bob",
        },
        token=bob_is,
    )
    assert stored.status == 200, stored.body
    assert stored.body["display_name"] == "a...@e..."
    long_term, ephemeral = stored.body["public_keys"]
    assert long_term["key_validity_url"].endswith("/_matrix/identity/v2/pubkey/isvalid")
    assert ephemeral["key_validity_url"].endswith("/_matrix/identity/v2/pubkey/ephemeral/isvalid")
    ephemeral_check = f"{IS}/pubkey/ephemeral/isvalid?public_key={quote(ephemeral['public_key'])}"
    assert api.get(ephemeral_check).body == {"valid": True}
    invitation = mail.outbox[-1]
    assert invitation.to == ["alice@example.org"]
    assert "Bob" in invitation.subject
    assert "Tea" in invitation.subject

    alice_is = is_token(api, alice)
    bind_email(api, alice_is, alice, "alice@example.org")

    assert len(onbinds) == 1
    body = onbinds[0]
    assert (body["medium"], body["address"], body["mxid"]) == (
        "email",
        "alice@example.org",
        alice.user_id,
    )
    [invite] = body["invites"]
    assert invite["room_id"] == "!room:example.org"
    assert invite["sender"] == bob.user_id
    assert invite["signed"]["mxid"] == alice.user_id
    assert invite["signed"]["token"] == stored.body["token"]
    verify_with_published_key(api, invite["signed"])
    # The onbind went unsigned to the homeserver of the user who bound the address.
    [sent] = [r for r in network.sent if r.path.endswith("/3pid/onbind")]
    assert sent.target.host_header == settings.SERVER_NAME
    assert "Authorization" not in sent.headers
    assert PendingInvite.objects.get().delivered_at_ms is not None
    # Delivered: the ephemeral key has served its purpose.
    assert api.get(ephemeral_check).body == {"valid": False}
    # The address is now bound: a new invitation is refused with its owner.
    again = api.post(
        f"{IS}/store-invite",
        {
            "medium": "email",
            "address": "alice@example.org",
            "room_id": "!room:example.org",
            "sender": bob.user_id,
        },
        token=bob_is,
    )
    assert (again.status, again.errcode, again.body.get("mxid")) == (
        400,
        "M_THREEPID_IN_USE",
        alice.user_id,
    )


def test_an_unreachable_homeserver_keeps_the_invite_for_later(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    network: FakeNetwork,
    settings: Any,
) -> None:
    # Celery's eager mode would run the retries at once; the task's first failure is enough.
    settings.CELERY_TASK_EAGER_PROPAGATES = False
    bob_is = is_token(api, bob)
    api.post(
        f"{IS}/store-invite",
        {
            "medium": "email",
            "address": "alice@example.org",
            "room_id": "!room:example.org",
            "sender": bob.user_id,
        },
        token=bob_is,
    )
    alice_is = is_token(api, alice)
    home = network.add(settings.SERVER_NAME, reachable=False)

    bind_email(api, alice_is, alice, "alice@example.org")

    invite = PendingInvite.objects.get()
    assert invite.mxid == alice.user_id
    assert invite.delivered_at_ms is None
    # The homeserver is back: the sweep delivers.
    home.reachable = True
    delivered: list[Any] = []
    home.handler = lambda method, path, body: (
        delivered.append(body) or json_response({}) if path.endswith("/onbind") else None
    )
    from identity.tasks import resume_invite_deliveries

    assert resume_invite_deliveries() == 1
    assert len(delivered) == 1
    assert PendingInvite.objects.get().delivered_at_ms is not None


@pytest.mark.parametrize("medium", ["msisdn"])
def test_invites_are_for_email_only(api: MatrixTestClient, bob: Persona, medium: str) -> None:
    response = api.post(
        f"{IS}/store-invite",
        {
            "medium": medium,
            "address": "447700900001",
            "room_id": "!r:x.org",
            "sender": bob.user_id,
        },
        token=is_token(api, bob),
    )
    assert (response.status, response.errcode) == (400, "M_UNRECOGNIZED")


def test_the_operator_sees_associations_and_invites(
    api: MatrixTestClient, alice: Persona, bob: Persona, admin_client: Any
) -> None:
    bind_email(api, is_token(api, alice), alice, "alice@example.org")
    api.post(
        f"{IS}/store-invite",
        {
            "medium": "email",
            "address": "carol@example.org",
            "room_id": "!room:example.org",
            "sender": bob.user_id,
        },
        token=is_token(api, bob),
    )

    associations = admin_client.get("/admin/identity/association/")
    invites = admin_client.get("/admin/identity/pendinginvite/")

    assert associations.status_code == 200
    assert b"alice@example.org" in associations.content
    assert invites.status_code == 200
    assert b"carol@example.org" in invites.content
