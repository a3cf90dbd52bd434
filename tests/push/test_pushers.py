"""GET /pushers and POST /pushers/set (Client-Server API, "Push Notifications"), and
pushers going away with the device or account that set them."""

from __future__ import annotations

from typing import Any

import pytest

from push.models import Pusher
from tests.conftest import MatrixTestClient, Persona, second_device
from tests.push.conftest import http_pusher, pushers, set_pusher

URL = "https://push.example.org/_matrix/push/v1/notify"


def test_a_pusher_is_set_and_listed(api: MatrixTestClient, alice: Persona) -> None:
    assert pushers(api, alice) == []
    set_pusher(
        api,
        alice,
        http_pusher(URL, profile_tag="xyz", data={"url": URL, "format": "event_id_only"}),
    )
    assert pushers(api, alice) == [
        {
            "pushkey": "pushkey-1",
            "kind": "http",
            "app_id": "org.example.app.android",
            "app_display_name": "Example",
            "device_display_name": "Alice's phone",
            "profile_tag": "xyz",
            "lang": "en",
            "data": {"url": URL, "format": "event_id_only"},
        }
    ]


def test_setting_the_same_app_id_and_pushkey_again_updates_it(
    api: MatrixTestClient, alice: Persona
) -> None:
    set_pusher(api, alice, http_pusher(URL))
    set_pusher(api, alice, http_pusher(URL, lang="de", data={"url": URL, "custom": 1}))
    set_pusher(api, alice, http_pusher(URL, pushkey="pushkey-2"))
    listed = {p["pushkey"]: p for p in pushers(api, alice)}
    assert set(listed) == {"pushkey-1", "pushkey-2"}
    assert listed["pushkey-1"]["lang"] == "de"
    assert listed["pushkey-1"]["data"] == {"url": URL, "custom": 1}
    assert "profile_tag" not in listed["pushkey-1"]


def test_kind_null_deletes_with_app_id_and_pushkey_only(
    api: MatrixTestClient, alice: Persona
) -> None:
    set_pusher(api, alice, http_pusher(URL))
    set_pusher(api, alice, http_pusher(URL, pushkey="other"))
    set_pusher(api, alice, {"kind": None, "app_id": "org.example.app.android", "pushkey": "other"})
    assert [p["pushkey"] for p in pushers(api, alice)] == ["pushkey-1"]
    # Deleting what does not exist is not an error.
    set_pusher(api, alice, {"kind": None, "app_id": "org.example.app.android", "pushkey": "x"})


def test_without_append_the_pushkey_leaves_other_users(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    """ "Otherwise, the homeserver must remove any other pushers with the same App ID and
    pushkey for different users"; with append both stay."""
    set_pusher(api, bob, http_pusher(URL))
    set_pusher(api, alice, http_pusher(URL, append=True))
    assert len(pushers(api, bob)) == 1
    set_pusher(api, alice, http_pusher(URL))
    assert pushers(api, bob) == []
    assert len(pushers(api, alice)) == 1


def test_pushers_are_per_user(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    set_pusher(api, alice, http_pusher(URL))
    assert pushers(api, bob) == []
    deletion = {"kind": None, "app_id": "org.example.app.android", "pushkey": "pushkey-1"}
    set_pusher(api, bob, deletion)
    assert len(pushers(api, alice)) == 1


def test_both_prefixes_and_authentication(api: MatrixTestClient, alice: Persona) -> None:
    assert api.get("/_matrix/client/r0/pushers", token=alice.access_token).status == 200
    response = api.get("pushers")
    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")
    response = api.post("pushers/set", http_pusher(URL))
    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"app_id": "a", "pushkey": "k"}, "kind"),
        ({"kind": None, "pushkey": "k"}, "app_id"),
        ({"kind": "http", "app_id": "a"}, "pushkey"),
    ],
)
def test_required_parameters(
    api: MatrixTestClient, alice: Persona, body: dict[str, Any], missing: str
) -> None:
    response = api.post("pushers/set", body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")
    assert missing in response.body["error"]


def test_every_missing_parameter_is_named(api: MatrixTestClient, alice: Persona) -> None:
    body = {"kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A"}
    response = api.post("pushers/set", body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")
    assert response.body["error"] == "Missing parameters: device_display_name, lang, data"
    body = http_pusher(URL, data={"format": "event_id_only"})
    response = api.post("pushers/set", body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")
    assert "url" in response.body["error"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": 1},
        {"app_id": 5},
        {"pushkey": ["k"]},
        {"lang": False},
        {"data": "https://push.example.org/_matrix/push/v1/notify"},
        {"data": {"url": 7}},
        {"append": "yes"},
        {"profile_tag": 3},
    ],
)
def test_wrong_types_are_bad_json(
    api: MatrixTestClient, alice: Persona, overrides: dict[str, Any]
) -> None:
    response = api.post("pushers/set", http_pusher(URL, **overrides), token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_BAD_JSON"), response.body
    assert Pusher.objects.count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"app_id": "a" * 65},
        {"app_id": ""},
        {"pushkey": "é" * 257},  # 514 bytes, 257 characters
        {"device_display_name": "d" * 256},
        {"lang": "l" * 65},
        {"kind": "carrier-pigeon"},
        {"data": {"url": URL, "format": "full"}},
        {"data": {"url": "https://push.example.org/notify"}},
        {"data": {"url": "https://push.example.org/_matrix/push/v1/notify/"}},
        {"data": {"url": "ftp://push.example.org/_matrix/push/v1/notify"}},
        {"data": {"url": "not a url"}},
        {"data": {"url": "https://user:pw@push.example.org/_matrix/push/v1/notify"}},
        {"data": {"url": "https://push.example.org:99999/_matrix/push/v1/notify"}},
        # Plain HTTP, and private addresses, only inside TRELLIS_PUSH_IP_ALLOWLIST.
        {"data": {"url": "http://push.example.org/_matrix/push/v1/notify"}},
        {"data": {"url": "http://10.1.2.3/_matrix/push/v1/notify"}},
        {"data": {"url": "https://10.1.2.3/_matrix/push/v1/notify"}},
        {"data": {"url": "https://[::1]/_matrix/push/v1/notify"}},
        {"data": {"url": "https://169.254.169.254/_matrix/push/v1/notify"}},
    ],
)
def test_invalid_values_are_refused(
    api: MatrixTestClient, alice: Persona, overrides: dict[str, Any]
) -> None:
    response = api.post("pushers/set", http_pusher(URL, **overrides), token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), response.body
    assert Pusher.objects.count() == 0


def test_a_pushkey_of_512_bytes_is_fine(api: MatrixTestClient, alice: Persona) -> None:
    set_pusher(api, alice, http_pusher(URL, pushkey="é" * 256, app_id="a" * 64))
    assert pushers(api, alice)[0]["pushkey"] == "é" * 256


def test_plain_http_inside_the_allow_list(
    api: MatrixTestClient, alice: Persona, settings: Any
) -> None:
    local = "http://127.0.0.1:9/_matrix/push/v1/notify"
    set_pusher(api, alice, http_pusher(local))
    # A name is resolved: every address it has must be inside the list.
    set_pusher(api, alice, http_pusher("http://localhost:9/_matrix/push/v1/notify", pushkey="b"))
    settings.PUSH_IP_ALLOWLIST = []
    response = api.post("pushers/set", http_pusher(local, pushkey="c"), token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_email_pushers_are_refused_for_want_of_a_bound_address(
    api: MatrixTestClient, alice: Persona
) -> None:
    body = http_pusher(URL, kind="email", app_id="m.email", pushkey="alice@example.org")
    response = api.post("pushers/set", body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_THREEPID_NOT_FOUND")
    assert pushers(api, alice) == []


def test_logout_removes_the_devices_pushers_only(api: MatrixTestClient, alice: Persona) -> None:
    phone = second_device(api, alice)
    set_pusher(api, phone, http_pusher(URL, pushkey="phone"))
    set_pusher(api, alice, http_pusher(URL, pushkey="laptop"))
    assert api.post("logout", token=phone.access_token).status == 200
    assert [p["pushkey"] for p in pushers(api, alice)] == ["laptop"]


def test_deleting_a_device_removes_its_pushers(api: MatrixTestClient, alice: Persona) -> None:
    phone = second_device(api, alice)
    set_pusher(api, phone, http_pusher(URL, pushkey="phone"))
    set_pusher(api, alice, http_pusher(URL, pushkey="laptop"))
    first = api.delete(f"devices/{phone.device_id}", {}, token=alice.access_token)
    assert first.status == 401  # user-interactive auth
    done = api.delete(
        f"devices/{phone.device_id}",
        {
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": alice.localpart},
                "password": alice.password,
                "session": first.body["session"],
            }
        },
        token=alice.access_token,
    )
    assert done.status == 200, done.body
    assert [p["pushkey"] for p in pushers(api, alice)] == ["laptop"]


def test_logout_all_removes_every_pusher(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    set_pusher(api, alice, http_pusher(URL, pushkey="a1"))
    set_pusher(api, second_device(api, alice), http_pusher(URL, pushkey="a2"))
    set_pusher(api, bob, http_pusher(URL, pushkey="b1"))
    assert api.post("logout/all", token=alice.access_token).status == 200
    assert list(Pusher.objects.values_list("pushkey", flat=True)) == ["b1"]


def test_deactivation_removes_every_pusher(api: MatrixTestClient, alice: Persona) -> None:
    set_pusher(api, alice, http_pusher(URL))
    # A pusher no device owns any more (set before device tracking, or by an operator).
    Pusher.objects.create(
        user_id=alice.user_id,
        kind="http",
        app_id="old",
        pushkey="old",
        app_display_name="",
        device_display_name="",
        lang="en",
        data={"url": URL},
        created_ts=0,
    )
    first = api.post("account/deactivate", {}, token=alice.access_token)
    done = api.post(
        "account/deactivate",
        {
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": alice.localpart},
                "password": alice.password,
                "session": first.body["session"],
            }
        },
        token=alice.access_token,
    )
    assert done.status == 200, done.body
    assert not Pusher.objects.filter(user_id=alice.user_id).exists()
