"""Server discovery and capabilities: /versions, /.well-known/matrix/*, /capabilities."""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona


def test_versions_needs_no_token(api: MatrixTestClient) -> None:
    response = api.get("/_matrix/client/versions")

    assert response.status == 200
    assert isinstance(response.body["versions"], list)
    assert all(isinstance(v, str) for v in response.body["versions"])
    assert isinstance(response.body["unstable_features"], dict)


def test_well_known_client_names_the_public_base_url(api: MatrixTestClient, settings: Any) -> None:
    settings.PUBLIC_BASEURL = "https://matrix.example.org/"

    response = api.get("/.well-known/matrix/client")

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.body == {"m.homeserver": {"base_url": "https://matrix.example.org/"}}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_well_known_server_defaults_to_the_base_url_host_and_port(
    api: MatrixTestClient, settings: Any
) -> None:
    settings.PUBLIC_BASEURL = "https://matrix.example.org/"
    settings.WELL_KNOWN_SERVER = ""

    response = api.get("/.well-known/matrix/server")

    assert response.status == 200
    assert response.body == {"m.server": "matrix.example.org:443"}


def test_well_known_server_can_be_configured(api: MatrixTestClient, settings: Any) -> None:
    settings.WELL_KNOWN_SERVER = "federation.example.org:8448"

    assert api.get("/.well-known/matrix/server").body == {
        "m.server": "federation.example.org:8448"
    }


def test_login_advertises_the_same_base_url(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    settings.PUBLIC_BASEURL = "https://matrix.example.org/"

    response = api.login("alice", alice.password)

    assert response.body["well_known"] == {
        "m.homeserver": {"base_url": "https://matrix.example.org/"}
    }


def test_capabilities(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("capabilities", token=alice.access_token)

    assert response.status == 200
    capabilities = response.body["capabilities"]
    assert capabilities["m.change_password"] == {"enabled": True}
    assert capabilities["m.set_displayname"] == {"enabled": True}
    assert capabilities["m.set_avatar_url"] == {"enabled": True}
    assert capabilities["m.3pid_changes"] == {"enabled": True}
    assert capabilities["m.profile_fields"]["enabled"] is True


def test_room_versions_default_to_12_and_list_the_stable_ones(
    api: MatrixTestClient, alice: Persona
) -> None:
    versions = api.get("capabilities", token=alice.access_token).body["capabilities"][
        "m.room_versions"
    ]

    assert versions["default"] == "12"
    assert versions["available"]["12"] == "stable"
    assert {str(n) for n in range(1, 13)} <= set(versions["available"])
    assert set(versions["available"].values()) <= {"stable", "unstable"}


def test_capabilities_needs_a_token(api: MatrixTestClient) -> None:
    response = api.get("capabilities")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_capabilities_under_r0(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("/_matrix/client/r0/capabilities", token=alice.access_token)

    assert response.status == 200
    assert "m.room_versions" in response.body["capabilities"]


def test_versions_advertises_v1_1_now_that_accounts_rooms_and_sync_work(
    api: MatrixTestClient,
) -> None:
    assert "v1.1" in api.get("/_matrix/client/versions").body["versions"]


def test_versions_announces_authenticated_media(api: MatrixTestClient) -> None:
    # Clients use /_matrix/client/v1/media/* only when told (v1.11 or this flag).
    response = api.get("/_matrix/client/versions")

    assert response.body["unstable_features"]["org.matrix.msc3916.stable"] is True
