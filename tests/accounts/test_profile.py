"""Profiles (Client-Server API, "Profiles": GET/PUT/DELETE /profile/{userId}[/{keyName}])."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User
from tests.conftest import MatrixTestClient, Persona, user_id
from tests.federation.helpers import CAROL, FakeServer, carol, network

__all__ = ["carol", "network"]


def put_field(api: MatrixTestClient, persona: Persona, key: str, value: Any) -> Any:
    return api.put(f"profile/{persona.user_id}/{key}", {key: value}, token=persona.access_token)


def test_a_new_user_has_a_display_name(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(f"profile/{alice.user_id}")

    assert response.status == 200
    assert response.body == {"displayname": "alice"}


def test_profiles_can_be_read_without_a_token(api: MatrixTestClient, alice: Persona) -> None:
    assert api.get(f"profile/{alice.user_id}/displayname").body == {"displayname": "alice"}


def test_set_and_get_the_display_name(api: MatrixTestClient, alice: Persona) -> None:
    response = put_field(api, alice, "displayname", "Alice Liddell")

    assert response.status == 200
    assert response.body == {}
    field = api.get(f"profile/{alice.user_id}/displayname")
    assert field.status == 200
    assert field.body == {"displayname": "Alice Liddell"}
    assert api.get(f"profile/{alice.user_id}").body["displayname"] == "Alice Liddell"


def test_set_an_mxc_avatar_url(api: MatrixTestClient, alice: Persona) -> None:
    response = put_field(api, alice, "avatar_url", "mxc://example.org/SEsfnsuifSDFSSEF")

    assert response.status == 200
    assert api.get(f"profile/{alice.user_id}/avatar_url").body == {
        "avatar_url": "mxc://example.org/SEsfnsuifSDFSSEF"
    }


@pytest.mark.parametrize("url", ["https://example.org/a.png", "example.org/a", "MXC://x/y"])
def test_an_avatar_url_must_be_an_mxc_uri(api: MatrixTestClient, alice: Persona, url: str) -> None:
    response = put_field(api, alice, "avatar_url", url)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert "avatar_url" not in User.objects.get(localpart="alice").profile


def test_a_display_name_must_be_a_string(api: MatrixTestClient, alice: Persona) -> None:
    response = put_field(api, alice, "displayname", {"first": "Alice"})

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert api.get(f"profile/{alice.user_id}/displayname").body == {"displayname": "alice"}


def test_a_display_name_over_256_characters_is_refused(
    api: MatrixTestClient, alice: Persona
) -> None:
    assert put_field(api, alice, "displayname", "a" * 256).status == 200

    response = put_field(api, alice, "displayname", "a" * 257)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert api.get(f"profile/{alice.user_id}/displayname").body == {"displayname": "a" * 256}


def test_set_the_time_zone(api: MatrixTestClient, alice: Persona) -> None:
    assert put_field(api, alice, "m.tz", "Europe/London").status == 200

    assert api.get(f"profile/{alice.user_id}/m.tz").body == {"m.tz": "Europe/London"}


def test_the_time_zone_must_be_a_string(api: MatrixTestClient, alice: Persona) -> None:
    response = put_field(api, alice, "m.tz", 1)

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"


@pytest.mark.parametrize("value", ["text", 42, True, None, ["a", 1], {"nested": {"x": 1}}])
def test_a_custom_field_takes_any_json_value(
    api: MatrixTestClient, alice: Persona, value: Any
) -> None:
    response = put_field(api, alice, "org.example.field", value)

    assert response.status == 200
    assert api.get(f"profile/{alice.user_id}/org.example.field").body == {
        "org.example.field": value
    }
    assert api.get(f"profile/{alice.user_id}").body == {
        "displayname": "alice",
        "org.example.field": value,
    }


@pytest.mark.parametrize(
    "key", ["nodot", "Org.example", "org.Example", "org..example", "1org.example", "m.tz2!"]
)
def test_a_key_outside_the_grammar_is_an_invalid_param(
    api: MatrixTestClient, alice: Persona, key: str
) -> None:
    response = put_field(api, alice, key, "x")

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert key not in User.objects.get(localpart="alice").profile


def test_a_key_over_255_bytes_is_too_large(api: MatrixTestClient, alice: Persona) -> None:
    key = "org." + "a" * 252

    response = put_field(api, alice, key, "x")

    assert response.status == 400
    assert response.errcode == "M_KEY_TOO_LARGE"


def test_a_key_of_255_bytes_is_fine(api: MatrixTestClient, alice: Persona) -> None:
    key = "org." + "a" * 251

    assert put_field(api, alice, key, "x").status == 200


def test_a_profile_over_64_kib_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    assert put_field(api, alice, "org.example.a", "x" * 40_000).status == 200

    response = put_field(api, alice, "org.example.b", "x" * 30_000)

    assert response.status == 400
    assert response.errcode == "M_PROFILE_TOO_LARGE"
    assert "org.example.b" not in User.objects.get(localpart="alice").profile


def test_the_body_must_hold_the_named_key(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(
        f"profile/{alice.user_id}/displayname", {"avatar_url": "x"}, token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"


def test_the_body_must_hold_only_the_named_key(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(
        f"profile/{alice.user_id}/displayname",
        {"displayname": "A", "avatar_url": "mxc://x/y"},
        token=alice.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert User.objects.get(localpart="alice").profile == {"displayname": "alice"}


def test_a_null_display_name_is_stored_not_deleted(api: MatrixTestClient, alice: Persona) -> None:
    assert put_field(api, alice, "displayname", None).status == 200

    assert api.get(f"profile/{alice.user_id}/displayname").body == {"displayname": None}


def test_nobody_sets_another_users_profile(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = api.put(
        f"profile/{bob.user_id}/displayname", {"displayname": "Bobby"}, token=alice.access_token
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert api.get(f"profile/{bob.user_id}/displayname").body == {"displayname": "bob"}


def test_setting_a_field_needs_a_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(f"profile/{alice.user_id}/displayname", {"displayname": "x"})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


# --- DELETE ----------------------------------------------------------------------------


def test_delete_a_field(api: MatrixTestClient, alice: Persona) -> None:
    put_field(api, alice, "m.tz", "Europe/Paris")

    response = api.delete(f"profile/{alice.user_id}/m.tz", token=alice.access_token)

    assert response.status == 200
    assert response.body == {}
    missing = api.get(f"profile/{alice.user_id}/m.tz")
    assert missing.status == 404
    assert missing.errcode == "M_NOT_FOUND"
    assert api.get(f"profile/{alice.user_id}").body == {"displayname": "alice"}


def test_deleting_an_unset_field_succeeds(api: MatrixTestClient, alice: Persona) -> None:
    response = api.delete(f"profile/{alice.user_id}/org.example.none", token=alice.access_token)

    assert response.status == 200


def test_deleting_a_key_outside_the_grammar_is_an_invalid_param(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = api.delete(f"profile/{alice.user_id}/Bad", token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"


def test_nobody_deletes_another_users_field(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = api.delete(f"profile/{bob.user_id}/displayname", token=alice.access_token)

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert api.get(f"profile/{bob.user_id}/displayname").status == 200


def test_deleting_a_field_needs_a_token(api: MatrixTestClient, alice: Persona) -> None:
    response = api.delete(f"profile/{alice.user_id}/displayname")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


# --- Unknown users and fields ----------------------------------------------------------


@pytest.mark.parametrize("who", [user_id("nobody"), f"@alice:{CAROL}", "not-a-user-id", "@:x"])
def test_an_unknown_user_has_no_profile(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, who: str
) -> None:
    # Carol answers 404 to the profile query (tests/federation/test_remote_profile.py
    # has the rest of remote profiles).
    whole = api.get(f"profile/{who}")
    field = api.get(f"profile/{who}/displayname")

    assert (whole.status, whole.errcode) == (404, "M_NOT_FOUND")
    assert (field.status, field.errcode) == (404, "M_NOT_FOUND")


def test_an_unset_field_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(f"profile/{alice.user_id}/avatar_url")

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_a_percent_encoded_user_id_is_understood(api: MatrixTestClient, alice: Persona) -> None:
    encoded = alice.user_id.replace("@", "%40").replace(":", "%3A")

    assert api.get(f"profile/{encoded}/displayname").body == {"displayname": "alice"}
