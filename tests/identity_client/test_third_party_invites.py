"""Invites by third-party identifier (Client-Server API, "Third-party invites";
Server-Server API, "Third-party invites"), against the identity server double.

Alice invites an email address. Bound already (to bob): a plain invite of bob. Not
bound: the identity server stores the invite and the room gets an
m.room.third_party_invite; when bob binds the address the identity server calls
/3pid/onbind with the signed invite, and bob is invited, as alice, with
``third_party_invite`` in the member event. A wrong signature, a revoked key and an
identity server that cannot be asked are refused (403) and invite nobody. Bob may also
redeem the signed object with POST /join's ``third_party_signed``; another server may ask
for the invite with PUT /exchange_third_party_invite.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from protocol.signing import generate_signing_key, sign_json
from rooms.models import Event, Membership
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import network
from tests.graph.remote import RemoteServer
from tests.identity_client.double import ACCESS_TOKEN, IdentityServerDouble
from tests.rooms.federation_helpers import fed, remote_pdu
from tests.rooms.federation_peers import Peers, peers
from tests.rooms.helpers import create_room, join, room_path
from tests.rooms.test_federation_membership import queued, remote_join

__all__ = ["network", "peers"]

EMAIL = "lemurs@monkeyworld.org"
ONBIND = "/_matrix/federation/v1/3pid/onbind"


def invite_by_email(
    api: MatrixTestClient,
    who: Persona,
    room_id: str,
    id_server: IdentityServerDouble,
    *,
    expect: int = 200,
) -> Any:
    response = api.post(
        room_path(room_id, "invite"),
        {
            "id_server": id_server.name,
            "id_access_token": ACCESS_TOKEN,
            "medium": "email",
            "address": EMAIL,
        },
        token=who.access_token,
    )
    assert response.status == expect, response.body
    return response


def member_content(api: MatrixTestClient, who: Persona, room_id: str, user_id: str) -> Any:
    return api.get(room_path(room_id, "state", "m.room.member", user_id), token=who.access_token)


def third_party_invites(api: MatrixTestClient, who: Persona, room_id: str) -> list[Any]:
    state = api.get(room_path(room_id, "state"), token=who.access_token).body
    return [e for e in state if e["type"] == "m.room.third_party_invite"]


def onbind(
    api: MatrixTestClient,
    id_server: IdentityServerDouble,
    room_id: str,
    sender: str,
    mxid: str,
    signed: dict[str, Any] | None = None,
    method: str = "PUT",
) -> Any:
    """The identity server's notice that ``mxid`` bound the address, with its one
    pending invite (token0)."""
    invite = {
        "medium": "email",
        "address": EMAIL,
        "mxid": mxid,
        "room_id": room_id,
        "sender": sender,
        "signed": signed or id_server.signed_invite("token0", mxid),
    }
    body = {"medium": "email", "address": EMAIL, "mxid": mxid, "invites": [invite]}
    return api.request(method, ONBIND, body)


# --- inviting --------------------------------------------------------------------------------


def test_an_address_bound_already_invites_its_user(
    api: MatrixTestClient, alice: Persona, bob: Persona, identity_server: IdentityServerDouble
) -> None:
    identity_server.bind("email", EMAIL, bob.user_id)
    room_id = create_room(api, alice)

    invite_by_email(api, alice, room_id, identity_server)

    assert member_content(api, alice, room_id, bob.user_id).body["membership"] == "invite"
    lookup = next(r for r in identity_server.requests if r[1] == "/_matrix/identity/v2/lookup")
    # A hashed lookup: the address itself never goes to the identity server.
    assert lookup[3]["algorithm"] == "sha256"
    assert EMAIL not in str(lookup[3])
    assert third_party_invites(api, alice, room_id) == []


def test_an_unbound_address_gets_a_third_party_invite(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    room_id = create_room(api, alice, name="The lemur room")

    invite_by_email(api, alice, room_id, identity_server)

    (stored,) = identity_server.invites
    assert stored["room_id"] == room_id
    assert stored["sender"] == alice.user_id
    assert (stored["medium"], stored["address"]) == ("email", EMAIL)
    assert stored["room_name"] == "The lemur room"
    assert stored["room_join_rules"] == "invite"
    assert stored["sender_display_name"] == "alice"
    (event,) = third_party_invites(api, alice, room_id)
    assert event["state_key"] == "token0"
    assert event["sender"] == alice.user_id
    url = f"https://{identity_server.name}/_matrix/identity/v2/pubkey/isvalid"
    assert event["content"] == {
        "display_name": "Bob",
        "public_key": identity_server.public_key(),
        "key_validity_url": url,
        "public_keys": [
            {"public_key": identity_server.public_key(), "key_validity_url": url},
            {
                "public_key": identity_server.public_key(identity_server.ephemeral),
                "key_validity_url": url,
            },
        ],
    }


def test_only_someone_who_may_invite_reaches_the_identity_server(
    api: MatrixTestClient, alice: Persona, bob: Persona, identity_server: IdentityServerDouble
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)  # joined, power 0; public_chat's invite level is 50

    response = invite_by_email(api, bob, room_id, identity_server, expect=403)

    assert response.body["errcode"] == "M_FORBIDDEN"
    assert identity_server.requests == []


def test_a_stranger_cannot_invite_by_address(
    api: MatrixTestClient, alice: Persona, bob: Persona, identity_server: IdentityServerDouble
) -> None:
    room_id = create_room(api, alice)

    invite_by_email(api, bob, room_id, identity_server, expect=403)

    assert identity_server.requests == []


def test_create_room_sends_its_invite_3pid(
    api: MatrixTestClient, alice: Persona, bob: Persona, identity_server: IdentityServerDouble
) -> None:
    identity_server.bind("email", "bound@example.com", bob.user_id)
    invites = [
        {
            "id_server": identity_server.name,
            "id_access_token": ACCESS_TOKEN,
            "medium": "email",
            "address": address,
        }
        for address in ("bound@example.com", EMAIL)
    ]

    room_id = create_room(api, alice, invite_3pid=invites)

    assert member_content(api, alice, room_id, bob.user_id).body["membership"] == "invite"
    assert [e["state_key"] for e in third_party_invites(api, alice, room_id)] == ["token0"]


def test_create_room_checks_invite_3pid(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "createRoom", {"invite_3pid": [{"medium": "email"}]}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")


def test_an_identity_server_that_cannot_be_reached_is_a_bad_gateway(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble, settings: Any
) -> None:
    room_id = create_room(api, alice)
    settings.FEDERATION_CA_FILE = ""  # its certificate is no longer trusted

    response = invite_by_email(api, alice, room_id, identity_server, expect=502)

    assert response.body["errcode"] == "M_UNKNOWN"
    assert third_party_invites(api, alice, room_id) == []


# --- redeeming -------------------------------------------------------------------------------


@pytest.fixture
def invited_room(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> str:
    """Alice's room with a third-party invite of EMAIL (token0)."""
    room_id = create_room(api, alice)
    invite_by_email(api, alice, room_id, identity_server)
    return room_id


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_onbind_turns_the_invite_into_an_invite_of_the_user(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
    method: str,
) -> None:
    identity_server.bind("email", EMAIL, bob.user_id)

    response = onbind(
        api, identity_server, invited_room, alice.user_id, bob.user_id, method=method
    )

    assert (response.status, response.body) == (200, {})
    content = member_content(api, alice, invited_room, bob.user_id).body
    assert content["membership"] == "invite"
    assert content["third_party_invite"]["display_name"] == "Bob"
    assert content["third_party_invite"]["signed"]["token"] == "token0"
    validity = [p for p in identity_server.paths() if "/pubkey/isvalid" in p]
    assert validity, "the key's validity was asked"
    join(api, bob, invited_room)
    assert member_content(api, alice, invited_room, bob.user_id).body["membership"] == "join"


def test_onbind_after_the_inviter_left(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    carol: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
) -> None:
    """Auth rules 4.4.1: the invite stands on the m.room.third_party_invite, not on the
    inviter's membership."""
    api.post(
        room_path(invited_room, "invite"), {"user_id": carol.user_id}, token=alice.access_token
    )
    join(api, carol, invited_room)
    api.post(room_path(invited_room, "leave"), token=alice.access_token)

    response = onbind(api, identity_server, invited_room, alice.user_id, bob.user_id)

    assert response.status == 200
    join(api, bob, invited_room)
    assert member_content(api, carol, invited_room, bob.user_id).body["membership"] == "join"


def test_a_signature_by_another_key_is_refused(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
) -> None:
    forged = identity_server.signed_invite("token0", bob.user_id, generate_signing_key("0"))

    response = onbind(api, identity_server, invited_room, alice.user_id, bob.user_id, forged)

    assert (response.status, response.body["errcode"]) == (403, "M_FORBIDDEN")
    assert not Membership.objects.filter(user_id=bob.user_id).exists()
    join(api, bob, invited_room, expect=403)


def test_a_revoked_key_is_refused(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
) -> None:
    identity_server.revoked.add(identity_server.public_key())

    response = onbind(api, identity_server, invited_room, alice.user_id, bob.user_id)

    assert (response.status, response.body["errcode"]) == (403, "M_FORBIDDEN")
    assert not Membership.objects.filter(user_id=bob.user_id).exists()


def test_an_identity_server_that_cannot_be_asked_is_refused(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
    settings: Any,
) -> None:
    settings.FEDERATION_IP_ALLOWLIST = []  # the key validity URL is now out of bounds

    response = onbind(api, identity_server, invited_room, alice.user_id, bob.user_id)

    assert (response.status, response.body["errcode"]) == (403, "M_FORBIDDEN")
    assert not Membership.objects.filter(user_id=bob.user_id).exists()


def test_a_token_the_room_does_not_have_is_refused(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
) -> None:
    signed = identity_server.signed_invite("token9", bob.user_id)
    invite = {
        "medium": "email",
        "address": EMAIL,
        "mxid": bob.user_id,
        "room_id": invited_room,
        "sender": alice.user_id,
        "signed": signed,
    }
    body = {"medium": "email", "address": EMAIL, "mxid": bob.user_id, "invites": [invite]}

    response = api.put(ONBIND, body)

    assert (response.status, response.body["errcode"]) == (403, "M_FORBIDDEN")


def test_onbind_for_a_user_of_another_server_is_refused(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble, invited_room: str
) -> None:
    response = onbind(api, identity_server, invited_room, alice.user_id, "@eve:elsewhere.test")

    assert (response.status, response.body["errcode"]) == (403, "M_FORBIDDEN")


def test_onbind_must_be_well_formed(api: MatrixTestClient) -> None:
    response = api.put(ONBIND, {"medium": "email", "address": EMAIL})

    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")


def test_join_with_third_party_signed_redeems_the_invite(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
) -> None:
    # sytest's form: the sender inside the signed object, signed with the ephemeral key.
    signed = sign_json(
        {"mxid": bob.user_id, "sender": alice.user_id, "token": "token0"},
        identity_server.name,
        identity_server.ephemeral,
    )

    response = api.post(
        f"join/{quote(invited_room, safe='')}",
        {"third_party_signed": signed},
        token=bob.access_token,
    )

    assert response.status == 200, response.body
    assert member_content(api, alice, invited_room, bob.user_id).body["membership"] == "join"


def test_join_with_someone_elses_third_party_signed_is_refused(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    carol: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
) -> None:
    signed = sign_json(
        {"mxid": bob.user_id, "sender": alice.user_id, "token": "token0"},
        identity_server.name,
        identity_server.key,
    )

    response = api.post(
        f"join/{quote(invited_room, safe='')}",
        {"third_party_signed": signed},
        token=carol.access_token,
    )

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert not Membership.objects.filter(user_id=carol.user_id).exists()


# --- another server asks ---------------------------------------------------------------------

DAVE_SERVER = "dave.test:8448"
DAN = f"@dan:{DAVE_SERVER}"


def test_another_server_may_ask_for_the_invite_of_its_user(
    api: MatrixTestClient,
    alice: Persona,
    identity_server: IdentityServerDouble,
    invited_room: str,
    peers: Peers,
) -> None:
    """PUT /exchange_third_party_invite: dave.test's user bound the address; we are in the
    room, so we make the invite (countersigned by dave.test like any remote invite)."""
    dave = peers.add(RemoteServer(DAVE_SERVER))
    body = {
        "type": "m.room.member",
        "room_id": invited_room,
        "sender": alice.user_id,
        "state_key": DAN,
        "content": {
            "membership": "invite",
            "third_party_invite": {
                "display_name": "Bob",
                "signed": identity_server.signed_invite("token0", DAN),
            },
        },
    }

    response = fed(
        api,
        dave.server,
        "PUT",
        f"/_matrix/federation/v1/exchange_third_party_invite/{invited_room}",
        body,
    )

    assert (response.status, response.body) == (200, {})
    content = member_content(api, alice, invited_room, DAN).body
    assert content["membership"] == "invite"
    assert content["third_party_invite"]["signed"]["mxid"] == DAN


def test_an_unsigned_exchange_request_is_refused(
    api: MatrixTestClient, alice: Persona, invited_room: str
) -> None:
    response = fed(
        api, None, "PUT", f"/_matrix/federation/v1/exchange_third_party_invite/{invited_room}", {}
    )

    assert (response.status, response.body["errcode"]) == (401, "M_UNAUTHORIZED")


def test_onbind_for_a_room_we_are_not_in_asks_the_inviters_server(
    api: MatrixTestClient, bob: Persona, identity_server: IdentityServerDouble, peers: Peers
) -> None:
    dave = peers.add(RemoteServer(DAVE_SERVER))
    room_id = f"!elsewhere:{DAVE_SERVER}"

    response = onbind(api, identity_server, room_id, DAN, bob.user_id)

    (path,) = dave.paths("/_matrix/federation/v1/exchange_third_party_invite/")
    assert path.endswith(quote(room_id, safe=""))
    _, _, sent = next(r for r in dave.requests if r[1] == path)
    assert sent["state_key"] == bob.user_id
    assert sent["sender"] == DAN
    assert sent["content"]["third_party_invite"]["signed"]["token"] == "token0"
    # dave.test does not know the room: nobody could make the invite.
    assert (response.status, response.body["errcode"]) == (502, "M_UNKNOWN")


def test_an_invite_made_for_another_servers_inviter_is_sent_to_the_room(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    identity_server: IdentityServerDouble,
    peers: Peers,
) -> None:
    """Dave (dave.test) sent the m.room.third_party_invite into alice's room; bob binds
    the address: the invite is made here as dave's, and, not being one of our users'
    events, queued for dave.test explicitly (Synapse's send_on_behalf_of)."""
    dave = peers.add(RemoteServer(DAVE_SERVER)).server
    room_id = create_room(
        api, alice, preset="public_chat", power_level_content_override={"invite": 0}
    )
    remote_join(api, dave, room_id)
    inviter = dave.user("dave")
    url = f"https://{identity_server.name}/_matrix/identity/v2/pubkey/isvalid"
    content = {
        "display_name": "Bob",
        "public_key": identity_server.public_key(),
        "key_validity_url": url,
        "public_keys": [{"public_key": identity_server.public_key(), "key_validity_url": url}],
    }
    pdu = remote_pdu(room_id, dave, inviter, "m.room.third_party_invite", content, "token0")
    sent = fed(
        api,
        dave,
        "PUT",
        "/_matrix/federation/v1/send/t1",
        {"origin": DAVE_SERVER, "origin_server_ts": 1, "pdus": [pdu]},
    )
    assert sent.status == 200, sent.body

    response = onbind(api, identity_server, room_id, inviter, bob.user_id)

    assert response.status == 200, response.body
    invite = Event.objects.get(room__room_id=room_id, type="m.room.member", state_key=bob.user_id)
    assert (invite.sender, invite.membership) == (inviter, "invite")
    assert invite.event_id in queued(DAVE_SERVER)
