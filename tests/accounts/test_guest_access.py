"""Guest accounts (Client-Server API, "Guest access"): registering one with
``POST /register?kind=guest``, the endpoints a guest may call, and upgrading a guest
to a full account by registering with its access token."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User
from accounts.services import uia
from tests.conftest import MatrixTestClient, Persona


@pytest.fixture(autouse=True)
def _guest_access_on(settings: Any) -> None:
    settings.ALLOW_GUEST_ACCESS = True


@pytest.fixture
def guest(api: MatrixTestClient) -> Persona:
    return api.register_guest()


# --- Registering a guest --------------------------------------------------------------


def test_a_guest_registers_without_user_interactive_auth(api: MatrixTestClient) -> None:
    response = api.post("register?kind=guest", {})

    assert response.status == 200, response.body
    assert response.body["user_id"].startswith("@")
    assert response.body["access_token"]
    assert response.body["device_id"]
    whoami = api.get("account/whoami", token=response.body["access_token"])
    assert whoami.status == 200
    assert whoami.body == {
        "user_id": response.body["user_id"],
        "device_id": response.body["device_id"],
        "is_guest": True,
    }


def test_a_guest_registration_ignores_all_but_the_device_display_name(
    api: MatrixTestClient,
) -> None:
    """ "all parameters in the request body with the exception of
    initial_device_display_name MUST BE ignored by the server. The server MUST pick a
    device_id for the account regardless of input.\""""
    response = api.post(
        "register?kind=guest",
        {
            "username": "chosen",
            "password": "a password",
            "device_id": "MYDEVICE",
            "initial_device_display_name": "Guest phone",
            "inhibit_login": True,
            "refresh_token": True,
        },
    )

    assert response.status == 200, response.body
    assert response.body["user_id"] != "@chosen:" + response.body["user_id"].split(":", 1)[1]
    assert response.body["device_id"] != "MYDEVICE"
    assert "access_token" in response.body
    assert "refresh_token" not in response.body
    guest = User.objects.get(is_guest=True)
    assert not guest.has_usable_password()
    devices = api.get("devices", token=response.body["access_token"])
    assert [d["display_name"] for d in devices.body["devices"]] == ["Guest phone"]


def test_two_guests_get_two_accounts(api: MatrixTestClient) -> None:
    first, second = api.register_guest(), api.register_guest()

    assert first.user_id != second.user_id
    assert User.objects.filter(is_guest=True).count() == 2


def test_guest_registration_is_off_unless_the_operator_allows_it(
    api: MatrixTestClient, settings: Any
) -> None:
    settings.ALLOW_GUEST_ACCESS = False

    response = api.post("register?kind=guest", {})

    assert response.status == 403
    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"
    assert not User.objects.exists()


def test_guest_registration_does_not_depend_on_the_registration_mode(
    api: MatrixTestClient, settings: Any
) -> None:
    settings.REGISTRATION = "closed"

    assert api.post("register?kind=guest", {}).status == 200


# --- What a guest may call ------------------------------------------------------------

# The guest access module's lists (reading, sending, account maintenance, end-to-end
# encryption) where no room is needed; the room endpoints are in tests/rooms.
ALLOWED = [
    ("GET", "account/whoami", None),
    ("GET", "devices", None),
    ("PUT", "profile/{user_id}/displayname", {"displayname": "Visitor"}),
    ("DELETE", "profile/{user_id}/displayname", None),
    ("POST", "keys/upload", {}),
    ("POST", "keys/query", {"device_keys": {}}),
    ("POST", "keys/claim", {"one_time_keys": {}}),
    ("PUT", "sendToDevice/m.test/txn1", {"messages": {}}),
    ("GET", "sync?timeout=0", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ALLOWED)
def test_a_guest_may_call_the_modules_endpoints(
    api: MatrixTestClient, guest: Persona, method: str, path: str, body: Any
) -> None:
    response = api.request(
        method, path.format(user_id=guest.user_id), body, token=guest.access_token
    )

    assert response.status == 200, response.body


def test_a_guest_may_read_and_rename_its_device(api: MatrixTestClient, guest: Persona) -> None:
    path = f"devices/{guest.device_id}"

    renamed = api.put(path, {"display_name": "Kiosk"}, token=guest.access_token)
    shown = api.get(path, token=guest.access_token)

    assert renamed.status == 200, renamed.body
    assert shown.body["display_name"] == "Kiosk"


REFUSED = [
    ("POST", "createRoom", {}),
    ("GET", "capabilities", None),
    ("GET", "joined_rooms", None),
    ("POST", "user/{user_id}/filter", {}),
    ("PUT", "user/{user_id}/account_data/m.test", {"a": 1}),
    ("GET", "pushrules/", None),
    ("GET", "keys/changes?from=s0&to=s1", None),
    ("POST", "keys/device_signing/upload", {}),
    ("PUT", "profile/{user_id}/avatar_url", {"avatar_url": "mxc://x/y"}),
    ("DELETE", "profile/{user_id}/m.tz", None),
    ("POST", "account/password", {"new_password": "a new password"}),
    ("POST", "account/deactivate", {}),
    ("POST", "logout", {}),
    ("DELETE", "devices/{device_id}", {}),
    ("POST", "publicRooms", {}),
    ("PUT", "directory/room/%23guests:localhost", {"room_id": "!r:localhost"}),
    ("POST", "user_directory/search", {"search_term": "a"}),
    ("GET", "/_matrix/client/v1/media/config", None),
    ("POST", "/_matrix/media/v3/upload", None),
    ("GET", "voip/turnServer", None),
]


@pytest.mark.parametrize(("method", "path", "body"), REFUSED)
def test_a_guest_is_refused_what_the_module_does_not_list(
    api: MatrixTestClient, guest: Persona, method: str, path: str, body: Any
) -> None:
    response = api.request(
        method,
        path.format(user_id=guest.user_id, device_id=guest.device_id),
        body,
        token=guest.access_token,
    )

    assert response.status == 403, response.body
    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"


def test_endpoints_that_need_no_token_stay_open_to_a_guest(
    api: MatrixTestClient, guest: Persona, alice: Persona
) -> None:
    profile = api.get(f"profile/{alice.user_id}/displayname", token=guest.access_token)
    rooms = api.get("publicRooms", token=guest.access_token)

    assert profile.status == 200
    assert profile.body == {"displayname": "alice"}
    assert rooms.status == 200


def test_a_guests_display_name_is_its_localpart_until_it_sets_one(
    api: MatrixTestClient, guest: Persona
) -> None:
    path = f"profile/{guest.user_id}/displayname"
    before = api.get(path, token=guest.access_token)

    api.put(path, {"displayname": "creeper"}, token=guest.access_token)

    assert before.body == {"displayname": guest.localpart}
    assert api.get(path, token=guest.access_token).body == {"displayname": "creeper"}


def test_telling_a_guest_costs_no_query(
    api: MatrixTestClient, guest: Persona, django_assert_num_queries: Any
) -> None:
    """The refusal is decided from the session's user row: the request reads the
    session (one query) and nothing else."""
    with django_assert_num_queries(1):
        response = api.get("capabilities", token=guest.access_token)

    assert response.errcode == "M_GUEST_ACCESS_FORBIDDEN"


# --- Upgrading a guest ----------------------------------------------------------------


def _upgrade(
    api: MatrixTestClient, body: dict[str, Any], *, expect_first: int = 401
) -> tuple[Any, Any]:
    """Register with ``body`` through UIA (m.login.dummy); both answers."""
    first = api.post("register", body)
    assert first.status == expect_first, first.body
    if first.status != 401:
        return first, None
    done = api.post(
        "register", {**body, "auth": {"type": "m.login.dummy", "session": first.body["session"]}}
    )
    return first, done


def test_a_guest_upgrades_to_a_full_account_keeping_its_user_id(
    api: MatrixTestClient, guest: Persona
) -> None:
    _, done = _upgrade(
        api,
        {
            "username": guest.localpart,
            "password": "SIR_Arthur_David",
            "guest_access_token": guest.access_token,
        },
    )

    assert done.status == 200, done.body
    assert done.body["user_id"] == guest.user_id
    user = User.objects.get(localpart=guest.localpart)
    assert user.is_guest is False
    assert User.objects.count() == 1
    whoami = api.get("account/whoami", token=done.body["access_token"])
    assert whoami.body["is_guest"] is False
    # The guest's own session goes on, as a full user's.
    assert api.get("account/whoami", token=guest.access_token).body["is_guest"] is False
    assert api.post("createRoom", {}, token=guest.access_token).status == 200
    assert api.login(guest.localpart, "SIR_Arthur_David").status == 200


def test_an_upgrade_without_a_session_in_auth_also_works(
    api: MatrixTestClient, guest: Persona
) -> None:
    """sytest "Guest user can upgrade to fully featured user": the second request names
    the stage without the session of the first."""
    body = {
        "username": guest.localpart,
        "password": "SIR_Arthur_David",
        "guest_access_token": guest.access_token,
    }
    assert api.post("register", body).status == 401

    done = api.post("register", {**body, "auth": {"type": "m.login.dummy"}})

    assert done.status == 200, done.body
    assert done.body["user_id"] == guest.user_id


def test_an_upgrade_remembers_the_guest_but_never_its_token(
    api: MatrixTestClient, guest: Persona
) -> None:
    first = api.post(
        "register",
        {
            "username": guest.localpart,
            "password": "SIR_Arthur_David",
            "guest_access_token": guest.access_token,
        },
    )
    stored = uia.UIASession.objects.get(session_id=first.body["session"])
    assert guest.access_token not in str(stored.results)

    # Only the session: the parameters of the first request are used again.
    done = api.post(
        "register", {"auth": {"type": "m.login.dummy", "session": first.body["session"]}}
    )

    assert done.status == 200, done.body
    assert done.body["user_id"] == guest.user_id
    assert User.objects.get(localpart=guest.localpart).is_guest is False


def test_a_guest_cannot_upgrade_another_guest(api: MatrixTestClient) -> None:
    one, two = api.register_guest(), api.register_guest()

    response = api.post(
        "register",
        {
            "username": one.localpart,
            "password": "pw pw pw",
            "guest_access_token": two.access_token,
        },
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"
    assert User.objects.filter(is_guest=True).count() == 2


def test_a_guest_token_cannot_take_a_full_users_name(
    api: MatrixTestClient, guest: Persona, alice: Persona
) -> None:
    response = api.post(
        "register",
        {"username": "alice", "password": "pw pw pw", "guest_access_token": guest.access_token},
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_a_full_users_token_upgrades_nothing(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "register",
        {"username": "alice", "password": "pw pw pw", "guest_access_token": alice.access_token},
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_an_unknown_guest_token_upgrades_nothing(api: MatrixTestClient, guest: Persona) -> None:
    response = api.post(
        "register",
        {"username": guest.localpart, "password": "pw pw pw", "guest_access_token": "nope"},
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_an_upgrade_needs_the_username(api: MatrixTestClient, guest: Persona) -> None:
    """ "They are also required to specify the username parameter to the value of the
    local part of their username, which is otherwise optional.\""""
    response = api.post(
        "register", {"password": "pw pw pw", "guest_access_token": guest.access_token}
    )

    assert response.status == 400
    assert response.errcode == "M_MISSING_PARAM"
