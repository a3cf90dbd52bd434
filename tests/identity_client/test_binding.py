"""A user's addresses at identity servers, through the homeserver (Client-Server API,
POST /account/3pid/bind, /unbind, /delete, and /account/deactivate), against a real
HTTPS identity server double (tests/identity_client/double.py).

The homeserver binds with the client's id_access_token, remembers where it bound, and
unbinds (signed as itself, X-Matrix, which the double checks) wherever it bound when the
client names no identity server. An identity server's refusal reaches the client with
its status and errcode; one that cannot be reached is 502 M_UNKNOWN.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from accounts.models import ThreepidIdServerBinding, User, UserThreepid
from protocol.signing import generate_signing_key
from tests.accounts.helpers import with_password_uia
from tests.conftest import MatrixTestClient, Persona
from tests.identity_client.double import ACCESS_TOKEN, IdentityServerDouble

ADDRESS = "bob1@example.com"


def bind(
    api: MatrixTestClient,
    who: Persona,
    id_server: IdentityServerDouble,
    address: str = ADDRESS,
    prefix: str = "/_matrix/client/v3",
) -> Any:
    sid = id_server.validate("email", address)
    return api.post(
        f"{prefix}/account/3pid/bind",
        {
            "id_server": id_server.name,
            "id_access_token": ACCESS_TOKEN,
            "sid": sid,
            "client_secret": "Az.=_-secret",
        },
        token=who.access_token,
    )


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_to_account(who: Persona, address: str = ADDRESS) -> None:
    """The address on the account, as /account/3pid/add leaves it."""
    UserThreepid.objects.create(
        user=User.objects.get(localpart=who.localpart),
        medium="email",
        address=address,
        validated_at_ms=1,
        added_at_ms=1,
    )


# --- bind ------------------------------------------------------------------------------------


def test_binding_goes_to_the_identity_server_with_the_clients_token(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    response = bind(api, alice, identity_server)

    assert (response.status, response.body) == (200, {})
    assert identity_server.bindings == {("email", ADDRESS): alice.user_id}
    method, path, headers, body = identity_server.requests[-1]
    assert (method, path) == ("POST", "/_matrix/identity/v2/3pid/bind")
    assert headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert body == {"sid": "session_0", "client_secret": "Az.=_-secret", "mxid": alice.user_id}
    recorded = ThreepidIdServerBinding.objects.get()
    assert (recorded.medium, recorded.address, recorded.id_server) == (
        "email",
        ADDRESS,
        identity_server.name,
    )


def test_sytest_binds_through_the_unstable_prefix(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    response = bind(api, alice, identity_server, prefix="/_matrix/client/unstable")

    assert response.status == 200
    assert identity_server.bindings == {("email", ADDRESS): alice.user_id}


def test_the_identity_servers_refusal_is_passed_on(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    response = api.post(
        "account/3pid/bind",
        {
            "id_server": identity_server.name,
            "id_access_token": ACCESS_TOKEN,
            "sid": "no such session",
            "client_secret": "secret",
        },
        token=alice.access_token,
    )

    assert (response.status, response.errcode) == (400, "M_NO_VALID_SESSION")
    assert not ThreepidIdServerBinding.objects.exists()


def test_a_wrong_identity_server_token_is_passed_on_as_401(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    sid = identity_server.validate("email", ADDRESS)
    response = api.post(
        "account/3pid/bind",
        {
            "id_server": identity_server.name,
            "id_access_token": "wrong",
            "sid": sid,
            "client_secret": "secret",
        },
        token=alice.access_token,
    )

    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")
    assert identity_server.bindings == {}


def test_an_unreachable_identity_server_is_a_bad_gateway(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    response = api.post(
        "account/3pid/bind",
        {
            "id_server": f"127.0.0.1:{closed_port()}",
            "id_access_token": ACCESS_TOKEN,
            "sid": "s",
            "client_secret": "secret",
        },
        token=alice.access_token,
    )

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")


def test_identity_servers_on_private_addresses_are_refused_by_default(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble, settings: Any
) -> None:
    settings.FEDERATION_IP_ALLOWLIST = []

    response = bind(api, alice, identity_server)

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")
    assert identity_server.requests == []


def test_an_untrusted_certificate_is_refused(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble, settings: Any
) -> None:
    settings.FEDERATION_CA_FILE = ""

    response = bind(api, alice, identity_server)

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")
    assert identity_server.bindings == {}


@pytest.mark.parametrize("id_server", ["https://example.org", "example.org/path", ""])
def test_id_server_is_a_host_and_port(
    api: MatrixTestClient, alice: Persona, id_server: str
) -> None:
    response = api.post(
        "account/3pid/bind",
        {"id_server": id_server, "id_access_token": "t", "sid": "s", "client_secret": "c"},
        token=alice.access_token,
    )

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_bind_needs_every_parameter(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "account/3pid/bind", {"id_server": "example.org", "sid": "s"}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")


# --- unbind ----------------------------------------------------------------------------------


def test_unbind_without_an_id_server_uses_the_one_bound_at(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    bind(api, alice, identity_server)

    response = api.post(
        "/_matrix/client/unstable/account/3pid/unbind",
        {"medium": "email", "address": ADDRESS},
        token=alice.access_token,
    )

    assert (response.status, response.body) == (200, {"id_server_unbind_result": "success"})
    # The double answers 200 only to a request this homeserver signed (X-Matrix).
    method, path, headers, body = identity_server.requests[-1]
    assert (method, path) == ("POST", "/_matrix/identity/v2/3pid/unbind")
    assert headers["authorization"].startswith("X-Matrix ")
    assert body == {"mxid": alice.user_id, "threepid": {"medium": "email", "address": ADDRESS}}
    assert identity_server.bindings == {}
    assert not ThreepidIdServerBinding.objects.exists()


def test_unbind_from_a_named_identity_server(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    identity_server.bind("email", ADDRESS, alice.user_id)  # bound out of band

    response = api.post(
        "account/3pid/unbind",
        {"medium": "email", "address": ADDRESS, "id_server": identity_server.name},
        token=alice.access_token,
    )

    assert response.body == {"id_server_unbind_result": "success"}
    assert identity_server.bindings == {}


def test_unbind_with_no_known_identity_server_is_no_support(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    response = api.post(
        "account/3pid/unbind", {"medium": "email", "address": ADDRESS}, token=alice.access_token
    )

    assert (response.status, response.body) == (200, {"id_server_unbind_result": "no-support"})
    assert identity_server.requests == []


def test_an_identity_server_that_does_not_know_the_binding_is_no_support(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    response = api.post(
        "account/3pid/unbind",
        {"medium": "email", "address": ADDRESS, "id_server": identity_server.name},
        token=alice.access_token,
    )

    assert response.body == {"id_server_unbind_result": "no-support"}


def test_the_double_refuses_an_unbind_signed_with_another_key(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    """The X-Matrix check is real: with another homeserver key expected, the double
    answers 403, which the client sees as the identity server failing (502)."""
    bind(api, alice, identity_server)
    identity_server.homeserver_key = generate_signing_key("other").verify_key

    response = api.post(
        "account/3pid/unbind", {"medium": "email", "address": ADDRESS}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")
    assert identity_server.bindings == {("email", ADDRESS): alice.user_id}
    # Kept, so that the unbind can be tried again.
    assert ThreepidIdServerBinding.objects.count() == 1


def test_unbind_checks_the_medium(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "account/3pid/unbind", {"medium": "pigeon", "address": "x"}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


# --- delete ----------------------------------------------------------------------------------


def test_delete_removes_the_address_and_unbinds_it(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    add_to_account(alice)
    bind(api, alice, identity_server)

    response = api.post(
        "account/3pid/delete", {"medium": "email", "address": ADDRESS}, token=alice.access_token
    )

    assert (response.status, response.body) == (200, {"id_server_unbind_result": "success"})
    assert not UserThreepid.objects.exists()
    assert identity_server.bindings == {}


def test_delete_unbinds_from_a_named_server_bound_out_of_band(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    identity_server.bind("email", ADDRESS, alice.user_id)

    response = api.post(
        "account/3pid/delete",
        {"medium": "email", "address": ADDRESS, "id_server": identity_server.name},
        token=alice.access_token,
    )

    assert response.body == {"id_server_unbind_result": "success"}
    assert identity_server.bindings == {}


def test_delete_of_an_address_bound_nowhere_is_no_support(
    api: MatrixTestClient, alice: Persona
) -> None:
    add_to_account(alice)

    response = api.post(
        "account/3pid/delete", {"medium": "email", "address": ADDRESS}, token=alice.access_token
    )

    assert (response.status, response.body) == (200, {"id_server_unbind_result": "no-support"})
    assert not UserThreepid.objects.exists()


def test_delete_keeps_the_address_when_the_identity_server_cannot_be_reached(
    api: MatrixTestClient, alice: Persona
) -> None:
    add_to_account(alice)
    ThreepidIdServerBinding.objects.create(
        user=User.objects.get(localpart="alice"),
        medium="email",
        address=ADDRESS,
        id_server=f"127.0.0.1:{closed_port()}",
    )

    response = api.post(
        "account/3pid/delete", {"medium": "email", "address": ADDRESS}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")
    assert UserThreepid.objects.count() == 1


def test_delete_does_not_touch_another_users_address(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    add_to_account(bob)

    response = api.post(
        "account/3pid/delete", {"medium": "email", "address": ADDRESS}, token=alice.access_token
    )

    assert response.status == 200
    assert UserThreepid.objects.get().user.localpart == "bob"


# --- deactivation ----------------------------------------------------------------------------


def test_deactivation_unbinds_and_removes_every_address(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    add_to_account(alice)
    bind(api, alice, identity_server)
    bind(api, alice, identity_server, address="other@example.com")

    response = with_password_uia(api, "POST", "account/deactivate", alice)

    assert (response.status, response.body) == (200, {"id_server_unbind_result": "success"})
    assert identity_server.bindings == {}
    assert not UserThreepid.objects.exists()
    assert not ThreepidIdServerBinding.objects.exists()


def test_deactivation_goes_ahead_when_an_identity_server_is_down(
    api: MatrixTestClient, alice: Persona
) -> None:
    add_to_account(alice)
    ThreepidIdServerBinding.objects.create(
        user=User.objects.get(localpart="alice"),
        medium="email",
        address=ADDRESS,
        id_server=f"127.0.0.1:{closed_port()}",
    )

    response = with_password_uia(api, "POST", "account/deactivate", alice)

    assert (response.status, response.body) == (200, {"id_server_unbind_result": "no-support"})
    assert not User.objects.get(localpart="alice").is_active
    assert not UserThreepid.objects.exists()


# --- the deprecated POST /account/3pid -----------------------------------------------------


def test_the_deprecated_add_takes_an_address_the_identity_server_validated(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    sid = identity_server.validate("email", "Carol@Example.com")
    creds = {
        "id_server": identity_server.name,
        "id_access_token": ACCESS_TOKEN,
        "sid": sid,
        "client_secret": "Az.=_-secret",
    }
    response = api.post(
        "/_matrix/client/v3/account/3pid", {"three_pid_creds": creds}, token=alice.access_token
    )

    assert (response.status, response.body) == (200, {})
    method, path, headers, _ = identity_server.requests[-1]
    assert method == "GET"
    assert path.startswith("/_matrix/identity/v2/3pid/getValidated3pid?")
    assert headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    listed = api.get("/_matrix/client/v3/account/3pid", token=alice.access_token).body
    assert [(t["medium"], t["address"], t["validated_at"]) for t in listed["threepids"]] == [
        ("email", "carol@example.com", 1234)
    ]
    # Added, not bound: the spec removed "bind" from this endpoint.
    assert identity_server.bindings == {}
    assert not ThreepidIdServerBinding.objects.exists()
    # It can now log in with it.
    login = api.post(
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "carol@example.com",
            },
            "password": alice.password,
        },
    )
    assert login.status == 200, login.body
    assert login.body["user_id"] == alice.user_id


def test_the_deprecated_add_refuses_a_session_the_identity_server_did_not_validate(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    creds = {
        "id_server": identity_server.name,
        "id_access_token": ACCESS_TOKEN,
        "sid": "unknown",
        "client_secret": "Az.=_-secret",
    }
    response = api.post(
        "/_matrix/client/v3/account/3pid", {"three_pid_creds": creds}, token=alice.access_token
    )

    assert (response.status, response.body["errcode"]) == (403, "M_THREEPID_AUTH_FAILED")
    assert not UserThreepid.objects.exists()


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"three_pid_creds": "x"}, "M_BAD_JSON"),
        (
            {"three_pid_creds": {"id_server": "a", "sid": "b", "client_secret": "c"}},
            "M_MISSING_PARAM",
        ),
        (
            {
                "three_pid_creds": {
                    "id_server": "a",
                    "sid": 1,
                    "client_secret": "c",
                    "id_access_token": "d",
                }
            },
            "M_BAD_JSON",
        ),
    ],
)
def test_the_deprecated_add_checks_its_body(
    api: MatrixTestClient, alice: Persona, body: dict[str, Any], errcode: str
) -> None:
    response = api.post("/_matrix/client/v3/account/3pid", body, token=alice.access_token)

    assert (response.status, response.body["errcode"]) == (400, errcode)
    assert not UserThreepid.objects.exists()


def test_an_operator_removing_an_address_unbinds_it_where_it_was_bound(
    api: MatrixTestClient, alice: Persona, identity_server: IdentityServerDouble
) -> None:
    from operators.services import users as operator_users

    assert bind(api, alice, identity_server).status == 200
    add_to_account(alice)

    operator_users.remove_threepid(alice.user_id, "email", ADDRESS, actor="@admin:test")

    assert identity_server.bindings == {}
    assert identity_server.paths()[-1] == "/_matrix/identity/v2/3pid/unbind"
    assert not UserThreepid.objects.exists()
    assert not ThreepidIdServerBinding.objects.exists()
