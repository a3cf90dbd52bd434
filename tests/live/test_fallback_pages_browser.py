"""The fallback pages in a real browser (Client-Server API, "Fallback" and "Login Fallback"):
the login page logs in through the client API and hands the response to
window.matrixLogin.onLogin; the UIA page completes its stage and tells its opener."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.live.browser import chromium
from tests.live.conftest import LiveServer

pytestmark = pytest.mark.live

PASSWORD = "correct horse battery"


def call(server: LiveServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def register(server: LiveServer, localpart: str) -> None:
    body: dict[str, Any] = {"username": localpart, "password": PASSWORD, "inhibit_login": True}
    status, first = call(server, "/_matrix/client/v3/register", body)
    assert status == 401, first
    auth = {"type": "m.login.dummy", "session": first["session"]}
    status, done = call(server, "/_matrix/client/v3/register", {**body, "auth": auth})
    assert status == 200, done


def test_the_login_fallback_logs_in_and_calls_on_login(homeserver: LiveServer) -> None:
    localpart = f"fallback{secrets.token_hex(4)}"
    register(homeserver, localpart)

    with chromium() as driver:
        driver.get(f"{homeserver.url}/_matrix/static/client/login/?device_id=FALLBACKDEV")
        driver.execute_script(
            "window.matrixLogin = {onLogin: function (response) { window.loggedIn = response; }};"
        )
        driver.find_element(By.ID, "user").send_keys(localpart)
        driver.find_element(By.ID, "password").send_keys("wrong password")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, "error").text.strip() != ""
        )
        assert driver.execute_script("return window.loggedIn || null;") is None

        password = driver.find_element(By.ID, "password")
        password.clear()
        password.send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        response = WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return window.loggedIn || null;")
        )

    assert response["user_id"] == homeserver.user_id(localpart)
    assert response["device_id"] == "FALLBACKDEV"
    assert response["access_token"]


def test_the_uia_fallback_completes_the_stage_and_tells_its_opener(
    homeserver: LiveServer,
) -> None:
    localpart = f"uiafallback{secrets.token_hex(4)}"
    body: dict[str, Any] = {"username": localpart, "password": PASSWORD}
    status, first = call(homeserver, "/_matrix/client/v3/register", body)
    assert status == 401, first
    session = first["session"]
    fallback = (
        f"{homeserver.url}/_matrix/client/v3/auth/m.login.dummy/fallback/web?session={session}"
    )

    with chromium() as driver:
        # The opener is any page of the server; it listens as the spec's example client does.
        driver.get(f"{homeserver.url}/_matrix/client/versions")
        driver.execute_script(
            "window.messages = [];"
            "window.addEventListener('message', function (e) { window.messages.push(e.data); });"
            "window.open(arguments[0]);",
            fallback,
        )
        opener = driver.current_window_handle
        WebDriverWait(driver, 20).until(lambda d: len(d.window_handles) == 2)
        popup = next(h for h in driver.window_handles if h != opener)
        driver.switch_to.window(popup)
        WebDriverWait(driver, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "button[type=submit]")
        )
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "done"))
        driver.switch_to.window(opener)
        messages = WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return window.messages.length ? window.messages : null;")
        )

    assert messages == ["authDone"]
    status, done = call(
        homeserver, "/_matrix/client/v3/register", {**body, "auth": {"session": session}}
    )
    assert status == 200, done
    assert done["user_id"] == homeserver.user_id(localpart)
