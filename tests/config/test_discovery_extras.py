"""GET /.well-known/matrix/support and the third-party lookup endpoints (/thirdparty/*)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixTestClient, Persona


@pytest.fixture
def unset_support(settings: Any) -> Any:
    settings.SUPPORT_EMAIL = ""
    settings.SUPPORT_MXID = ""
    settings.SUPPORT_PAGE = ""
    return settings


def test_support_is_404_when_nothing_is_configured(
    api: MatrixTestClient, unset_support: Any
) -> None:
    response = api.get("/.well-known/matrix/support")

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_support_lists_the_admin_contact_and_page(
    api: MatrixTestClient, unset_support: Any
) -> None:
    unset_support.SUPPORT_EMAIL = "admin@example.org"
    unset_support.SUPPORT_MXID = "@admin:example.org"
    unset_support.SUPPORT_PAGE = "https://example.org/help"

    response = api.get("/.well-known/matrix/support")

    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.body == {
        "contacts": [
            {
                "matrix_id": "@admin:example.org",
                "email_address": "admin@example.org",
                "role": "m.role.admin",
            }
        ],
        "support_page": "https://example.org/help",
    }


def test_support_with_only_an_email(api: MatrixTestClient, unset_support: Any) -> None:
    unset_support.SUPPORT_EMAIL = "admin@example.org"

    response = api.get("/.well-known/matrix/support")

    assert response.body == {
        "contacts": [{"email_address": "admin@example.org", "role": "m.role.admin"}]
    }


def test_support_with_only_a_page(api: MatrixTestClient, unset_support: Any) -> None:
    unset_support.SUPPORT_PAGE = "https://example.org/help"

    assert api.get("/.well-known/matrix/support").body == {
        "support_page": "https://example.org/help"
    }


def test_support_settings_come_from_the_environment() -> None:
    from config import options

    values = options.load(
        {"TRELLIS_SUPPORT_EMAIL": "a@example.org", "TRELLIS_SUPPORT_PAGE": "https://x/"}
    )

    assert values["support_email"] == "a@example.org"
    assert values["support_page"] == "https://x/"


def test_without_bridges_no_protocol_is_known(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("thirdparty/protocols", token=alice.access_token)

    assert response.status == 200
    assert response.body == {}


@pytest.mark.parametrize(
    "path", ["thirdparty/protocol/irc", "thirdparty/location/irc", "thirdparty/user/irc"]
)
def test_an_unknown_protocol_is_404_not_found(
    api: MatrixTestClient, alice: Persona, path: str
) -> None:
    response = api.get(path, token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


@pytest.mark.parametrize(
    "path", ["thirdparty/location?alias=%23a:example.org", "thirdparty/user?userid=@b:example.org"]
)
def test_reverse_lookups_find_nothing_without_bridges(
    api: MatrixTestClient, alice: Persona, path: str
) -> None:
    response = api.get(path, token=alice.access_token)

    assert response.status == 200
    assert response.body == []


@pytest.mark.parametrize("path", ["thirdparty/location", "thirdparty/user"])
def test_reverse_lookups_need_their_parameter(
    api: MatrixTestClient, alice: Persona, path: str
) -> None:
    response = api.get(path, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


@pytest.mark.parametrize(
    "path",
    [
        "thirdparty/protocols",
        "thirdparty/protocol/irc",
        "thirdparty/location/irc",
        "thirdparty/user/irc",
        "thirdparty/location?alias=%23a:example.org",
        "thirdparty/user?userid=@b:example.org",
    ],
)
def test_third_party_lookups_need_an_access_token(api: MatrixTestClient, path: str) -> None:
    response = api.get(path)

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"
