"""Device management (Client-Server API, "Device management")."""

from __future__ import annotations

import pytest

from accounts.models import Device, UIASession
from tests.accounts.helpers import password_auth, whoami, with_password_uia
from tests.conftest import MatrixTestClient, Persona


def test_list_devices_shows_only_mine(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    laptop = api.login(
        "alice", alice.password, device_id="LAPTOP", initial_device_display_name="Laptop"
    )
    assert laptop.status == 200

    response = api.get("devices", token=alice.access_token)

    assert response.status == 200
    devices = {d["device_id"]: d for d in response.body["devices"]}
    assert set(devices) == {alice.device_id, "LAPTOP"}
    assert devices["LAPTOP"]["display_name"] == "Laptop"
    assert devices["LAPTOP"]["last_seen_ip"] == "127.0.0.1"
    assert isinstance(devices["LAPTOP"]["last_seen_ts"], int)
    assert bob.device_id not in devices


def test_get_one_device(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(f"devices/{alice.device_id}", token=alice.access_token)

    assert response.status == 200
    assert response.body["device_id"] == alice.device_id
    # Alice's device was never named: display_name is absent (spec: "Absent if no name").
    assert set(response.body) == {"device_id", "last_seen_ip", "last_seen_ts"}


def test_get_an_unknown_device_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("devices/NOSUCHDEVICE", token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_another_users_device_is_not_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = api.get(f"devices/{bob.device_id}", token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_devices_need_a_token(api: MatrixTestClient) -> None:
    response = api.get("devices")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_rename_a_device(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(
        f"devices/{alice.device_id}", {"display_name": "Work phone"}, token=alice.access_token
    )

    assert response.status == 200
    assert response.body == {}
    device = api.get(f"devices/{alice.device_id}", token=alice.access_token).body
    assert device["display_name"] == "Work phone"


def test_a_rename_without_display_name_changes_nothing(
    api: MatrixTestClient, alice: Persona
) -> None:
    api.put(f"devices/{alice.device_id}", {"display_name": "Phone"}, token=alice.access_token)

    response = api.put(f"devices/{alice.device_id}", {}, token=alice.access_token)

    assert response.status == 200
    assert Device.objects.get(device_id=alice.device_id).display_name == "Phone"


def test_renaming_an_unknown_device_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    for body in ({"display_name": "x"}, {}):
        response = api.put("devices/NOSUCHDEVICE", body, token=alice.access_token)
        assert response.status == 404
        assert response.errcode == "M_NOT_FOUND"
    assert not Device.objects.filter(device_id="NOSUCHDEVICE").exists()


def test_renaming_another_users_device_is_not_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = api.put(
        f"devices/{bob.device_id}", {"display_name": "mine now"}, token=alice.access_token
    )

    assert response.status == 404
    assert Device.objects.get(device_id=bob.device_id).display_name is None


def test_display_name_must_be_a_string(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(f"devices/{alice.device_id}", {"display_name": 5}, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"


# --- DELETE /devices/{deviceId} --------------------------------------------------------


def test_delete_device_asks_for_the_password(api: MatrixTestClient, alice: Persona) -> None:
    response = api.delete(f"devices/{alice.device_id}", token=alice.access_token)

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.password"]}]
    assert response.body["session"]
    assert Device.objects.filter(device_id=alice.device_id).exists()


def test_delete_device_with_the_password_deletes_it_and_its_token(
    api: MatrixTestClient, alice: Persona
) -> None:
    phone = api.login("alice", alice.password, device_id="PHONE").body

    response = with_password_uia(api, "DELETE", "devices/PHONE", alice)

    assert response.status == 200
    assert response.body == {}
    assert not Device.objects.filter(device_id="PHONE").exists()
    gone = whoami(api, phone["access_token"])
    assert gone.status == 401
    assert gone.errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, alice.access_token).status == 200


def test_a_wrong_password_fails_the_stage_with_the_uia_body(
    api: MatrixTestClient, alice: Persona
) -> None:
    first = api.delete(f"devices/{alice.device_id}", token=alice.access_token)
    session = first.body["session"]

    response = api.delete(
        f"devices/{alice.device_id}",
        {"auth": password_auth(alice, session, password="wrong")},
        token=alice.access_token,
    )

    assert response.status == 401
    assert response.errcode == "M_FORBIDDEN"
    assert response.body["completed"] == []
    assert response.body["flows"] == [{"stages": ["m.login.password"]}]
    assert response.body["session"] == session
    assert Device.objects.filter(device_id=alice.device_id).exists()
    # The session survives a failed attempt: the right password then succeeds.
    retry = api.delete(
        f"devices/{alice.device_id}",
        {"auth": password_auth(alice, session)},
        token=alice.access_token,
    )
    assert retry.status == 200
    assert not Device.objects.filter(device_id=alice.device_id).exists()


@pytest.mark.parametrize("with_session", [True, False])
def test_another_users_password_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona, with_session: bool
) -> None:
    # sytest "DELETE /device/{deviceId} requires UI auth user to match device owner":
    # a stolen token plus the thief's own credentials answers 403, as Synapse does.
    first = api.delete(f"devices/{alice.device_id}", token=alice.access_token)
    session = first.body["session"] if with_session else None

    response = api.delete(
        f"devices/{alice.device_id}",
        {"auth": password_auth(bob, session)},
        token=alice.access_token,
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert "flows" not in response.body
    assert Device.objects.filter(device_id=alice.device_id).exists()
    # The owner's own password still completes the stage in that session.
    if with_session:
        done = api.delete(
            f"devices/{alice.device_id}",
            {"auth": password_auth(alice, session)},
            token=alice.access_token,
        )
        assert done.status == 200, done.body


def test_a_uia_session_cannot_be_used_by_another_user(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    alices = api.delete(f"devices/{alice.device_id}", token=alice.access_token).body["session"]

    response = api.delete(
        f"devices/{bob.device_id}",
        {"auth": password_auth(bob, alices)},
        token=bob.access_token,
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert Device.objects.filter(device_id=bob.device_id).exists()


def test_a_uia_session_is_bound_to_its_operation(api: MatrixTestClient, alice: Persona) -> None:
    api.login("alice", alice.password, device_id="PHONE")
    session = api.delete("devices/PHONE", token=alice.access_token).body["session"]

    response = api.delete(
        f"devices/{alice.device_id}",
        {"auth": password_auth(alice, session)},
        token=alice.access_token,
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert Device.objects.filter(device_id=alice.device_id).exists()


def test_a_finished_uia_session_is_forgotten(api: MatrixTestClient, alice: Persona) -> None:
    with_password_uia(api, "DELETE", f"devices/{alice.device_id}", alice)

    assert not UIASession.objects.filter(uri__startswith="delete_device").exists()


def test_deleting_an_unknown_device_succeeds_after_auth(
    api: MatrixTestClient, alice: Persona
) -> None:
    # DELETE /devices/{deviceId}: 200 "The device was successfully removed, or had
    # been removed previously"; the spec defines no 404 for this endpoint.
    response = with_password_uia(api, "DELETE", "devices/GONE", alice)

    assert response.status == 200
    assert Device.objects.filter(user__localpart="alice").count() == 1


def test_another_users_device_is_never_deleted(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = with_password_uia(api, "DELETE", f"devices/{bob.device_id}", alice)

    assert response.status == 200
    assert whoami(api, bob.access_token).status == 200


# --- POST /delete_devices -----------------------------------------------------------


def test_delete_devices_deletes_the_listed_ones(api: MatrixTestClient, alice: Persona) -> None:
    one = api.login("alice", alice.password, device_id="ONE").body
    two = api.login("alice", alice.password, device_id="TWO").body
    keep = api.login("alice", alice.password, device_id="KEEP").body

    response = with_password_uia(
        api, "POST", "delete_devices", alice, {"devices": ["ONE", "TWO", "UNKNOWN"]}
    )

    assert response.status == 200
    assert set(
        Device.objects.filter(user__localpart="alice").values_list("device_id", flat=True)
    ) == {alice.device_id, "KEEP"}
    assert whoami(api, one["access_token"]).errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, two["access_token"]).errcode == "M_UNKNOWN_TOKEN"
    assert whoami(api, keep["access_token"]).status == 200


def test_delete_devices_asks_for_the_password_first(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post("delete_devices", {"devices": [alice.device_id]}, token=alice.access_token)

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.password"]}]
    assert Device.objects.filter(device_id=alice.device_id).exists()


def test_delete_devices_needs_a_list_of_strings(api: MatrixTestClient, alice: Persona) -> None:
    missing = api.post("delete_devices", {}, token=alice.access_token)
    not_list = api.post("delete_devices", {"devices": "ONE"}, token=alice.access_token)
    not_strings = api.post("delete_devices", {"devices": [1, 2]}, token=alice.access_token)

    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    assert (not_list.status, not_list.errcode) == (400, "M_BAD_JSON")
    assert (not_strings.status, not_strings.errcode) == (400, "M_BAD_JSON")


def test_unknown_device_fields_are_absent_not_null(api: MatrixTestClient) -> None:
    carol = api.register("carol")
    devices = api.get("devices", token=carol.access_token).body["devices"]
    assert devices[0]["device_id"] == carol.device_id
    assert "display_name" not in devices[0]
    assert None not in devices[0].values()
