"""Accounts, as matrix-nio (a real client library) sees them on a running homeserver.

Every step checks that nio parsed the answer into its success class: a response that
nio cannot read is as broken, for its users, as an error.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    ErrorResponse,
    LoginError,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileGetResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    UpdateDeviceResponse,
    WhoamiError,
    WhoamiResponse,
)

from tests.live.conftest import LiveServer

pytestmark = pytest.mark.live

PASSWORD = "correct horse battery staple"


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on its own event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def new_localpart() -> str:
    return f"user_{secrets.token_hex(4)}"


@asynccontextmanager
async def nio_client(server: LiveServer, localpart: str) -> AsyncIterator[AsyncClient]:
    # Bounded: nio retries connection errors forever and sleeps on 429 by default.
    config = AsyncClientConfig(max_timeouts=2, max_limit_exceeded=0, request_timeout=30)
    client = AsyncClient(server.url, localpart, config=config)
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def registered(server: LiveServer) -> AsyncIterator[AsyncClient]:
    """A client of a newly registered user, logged in on the device registration made."""
    async with nio_client(server, new_localpart()) as client:
        response = await client.register(client.user, PASSWORD, device_name="registration")
        assert isinstance(response, RegisterResponse), response
        yield client


@asynccontextmanager
async def logged_in(
    server: LiveServer, localpart: str, password: str
) -> AsyncIterator[AsyncClient]:
    async with nio_client(server, localpart) as client:
        response = await client.login(password, device_name="second")
        assert isinstance(response, LoginResponse), response
        yield client


def localpart_of(client: AsyncClient) -> str:
    return client.user_id.split(":", 1)[0].removeprefix("@")


async def raw_request(
    client: AsyncClient, method: str, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A request nio has no method for, sent through nio's own HTTP session."""
    response = await client.send(
        method,
        f"/_matrix/client/v3/{path}",
        json.dumps(body),
        headers={
            "Authorization": f"Bearer {client.access_token}",
            "Content-Type": "application/json",
        },
    )
    return response.status, await response.json()


def password_auth(client: AsyncClient, password: str, session: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart_of(client)},
        "password": password,
        "session": session,
    }


async def whoami_errcode(server: LiveServer, access_token: str) -> str | None:
    async with nio_client(server, "") as client:
        client.access_token = access_token
        response = await client.whoami()
        return response.status_code if isinstance(response, WhoamiError) else None


@run_async
async def test_register_then_whoami(homeserver: LiveServer) -> None:
    async with registered(homeserver) as client:
        assert client.user_id == homeserver.user_id(client.user)
        assert client.access_token
        assert client.device_id

        whoami = await client.whoami()

        assert isinstance(whoami, WhoamiResponse), whoami
        assert whoami.user_id == client.user_id
        assert whoami.device_id == client.device_id
        assert whoami.is_guest is False


@run_async
async def test_password_login_opens_a_new_device(homeserver: LiveServer) -> None:
    async with (
        registered(homeserver) as first,
        logged_in(homeserver, first.user, PASSWORD) as second,
    ):
        assert second.user_id == first.user_id
        assert second.device_id != first.device_id

        whoami = await second.whoami()

        assert isinstance(whoami, WhoamiResponse), whoami
        assert whoami.device_id == second.device_id


@run_async
async def test_display_name_is_part_of_the_profile(homeserver: LiveServer) -> None:
    async with registered(homeserver) as client:
        set_name = await client.set_displayname("Alice Liddell")
        assert isinstance(set_name, ProfileSetDisplayNameResponse), set_name

        name = await client.get_displayname()
        assert isinstance(name, ProfileGetDisplayNameResponse), name
        assert name.displayname == "Alice Liddell"

        profile = await client.get_profile()
        assert isinstance(profile, ProfileGetResponse), profile
        assert profile.displayname == "Alice Liddell"
        assert profile.avatar_url is None


@run_async
async def test_devices_are_listed_and_renamed(homeserver: LiveServer) -> None:
    async with (
        registered(homeserver) as first,
        logged_in(homeserver, first.user, PASSWORD) as second,
    ):
        renamed = await first.update_device(second.device_id, {"display_name": "Laptop"})
        assert isinstance(renamed, UpdateDeviceResponse), renamed

        devices = await first.devices()

        assert isinstance(devices, DevicesResponse), devices
        names = {device.id: device.display_name for device in devices.devices}
        assert names == {first.device_id: "registration", second.device_id: "Laptop"}


@run_async
async def test_deleting_devices_asks_for_the_password(homeserver: LiveServer) -> None:
    async with (
        registered(homeserver) as first,
        logged_in(homeserver, first.user, PASSWORD) as second,
    ):
        challenge = await first.delete_devices([second.device_id])
        assert isinstance(challenge, DeleteDevicesAuthResponse), challenge
        assert [flow["stages"] for flow in challenge.flows] == [["m.login.password"]]

        wrong = await first.delete_devices(
            [second.device_id], password_auth(first, "wrong", challenge.session)
        )
        assert not isinstance(wrong, DeleteDevicesResponse), wrong

        deleted = await first.delete_devices(
            [second.device_id], password_auth(first, PASSWORD, challenge.session)
        )
        assert isinstance(deleted, DeleteDevicesResponse), deleted

        devices = await first.devices()
        assert isinstance(devices, DevicesResponse), devices
        assert [device.id for device in devices.devices] == [first.device_id]
        assert await whoami_errcode(homeserver, second.access_token) == "M_UNKNOWN_TOKEN"


@run_async
async def test_changing_the_password(homeserver: LiveServer) -> None:
    new_password = "tr0ub4dor&3"
    async with (
        registered(homeserver) as first,
        logged_in(homeserver, first.user, PASSWORD) as other_device,
    ):
        status, challenge = await raw_request(
            first, "POST", "account/password", {"new_password": new_password}
        )
        assert status == 401, challenge
        assert {"stages": ["m.login.password"]} in challenge["flows"]

        status, body = await raw_request(
            first,
            "POST",
            "account/password",
            {
                "new_password": new_password,
                "auth": password_auth(first, PASSWORD, challenge["session"]),
            },
        )
        assert (status, body) == (200, {})

        # logout_devices defaults to true: every other device is logged out.
        assert await whoami_errcode(homeserver, other_device.access_token) == "M_UNKNOWN_TOKEN"
        assert isinstance(await first.whoami(), WhoamiResponse)

        async with nio_client(homeserver, first.user) as client:
            old = await client.login(PASSWORD)
            assert isinstance(old, LoginError), old
            assert old.status_code == "M_FORBIDDEN"

            new = await client.login(new_password)
            assert isinstance(new, LoginResponse), new


@run_async
async def test_logged_out_token_is_unknown(homeserver: LiveServer) -> None:
    async with registered(homeserver) as client:
        token = client.access_token

        logout = await client.logout()

        assert isinstance(logout, LogoutResponse), logout
        assert not isinstance(logout, ErrorResponse)
        assert await whoami_errcode(homeserver, token) == "M_UNKNOWN_TOKEN"
