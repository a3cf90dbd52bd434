"""The admin portal in a real browser against a running homeserver (web server and worker,
as ``make run`` starts them): an operator made with ``manage.py createsuperuser`` turns on
two-factor login, logs in with a code, reads the dashboard, finds a user and deactivates
them, acts on a report and quarantines media that users made through the client API.

Screenshots of the main pages go to docs/screenshots/ when TRELLIS_SCREENSHOTS=1 (that is
how the README's pictures are made), else to the test's temporary directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.browser import chromium
from tests.live.conftest import (
    PROJECT_ROOT,
    LiveServer,
    backend_environ,
    start_homeserver,
    stop_homeserver,
)

pytestmark = pytest.mark.live

OPERATOR = "root"
OPERATOR_PASSWORD = "portal-pw-7c1e"
PASSWORD = "user-pw-3b9a"
WAIT_S = 30


@dataclass
class World:
    """What the users made through the client API before the operator looks."""

    server: LiveServer
    tokens: dict[str, str]
    room_id: str
    reported_event_id: str
    media_id: str


def call(server: LiveServer, method: str, path: str, body: Any = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}{path}", data=data, headers=headers, method=method
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def call_status(server: LiveServer, method: str, path: str, token: str) -> tuple[int, str]:
    """The status and errcode of a request expected to fail (200 and "" when it did not)."""
    request = urllib.request.Request(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()).get("errcode", "")
    return 200, ""


def register(server: LiveServer, localpart: str) -> str:
    body = {"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    return str(call(server, "POST", "/_matrix/client/v3/register", body)["access_token"])


def upload(server: LiveServer, token: str, data: bytes, content_type: str) -> str:
    request = urllib.request.Request(
        f"{server.url}/_matrix/media/v3/upload?filename=cat.png",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["content_uri"])


def png(width: int = 64, height: int = 48) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def create_operator(server: LiveServer) -> None:
    """``manage.py createsuperuser --noinput``, as the README tells operators."""
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "manage.py"), "createsuperuser", "--noinput"],
        cwd=PROJECT_ROOT,
        env={
            **server.environ,
            "DJANGO_SUPERUSER_LOCALPART": OPERATOR,
            "DJANGO_SUPERUSER_PASSWORD": OPERATOR_PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("portal")
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(data_dir, backend)
        try:
            create_operator(server)
            tokens = {name: register(server, name) for name in ("alice", "bob", "mallory", "eve")}
            room_id = call(
                server,
                "POST",
                "/_matrix/client/v3/createRoom",
                {"name": "Garden club", "preset": "public_chat"},
                tokens["alice"],
            )["room_id"]
            room = quote(room_id, safe="")
            for name in ("bob", "mallory", "eve"):
                call(server, "POST", f"/_matrix/client/v3/join/{room}", {}, tokens[name])
            for n in range(3):
                call(
                    server,
                    "PUT",
                    f"/_matrix/client/v3/rooms/{room}/send/m.room.message/a{n}",
                    {"msgtype": "m.text", "body": f"The roses are out ({n})"},
                    tokens["alice"],
                )
            content_uri = upload(server, tokens["mallory"], png(), "image/png")
            spam = call(
                server,
                "PUT",
                f"/_matrix/client/v3/rooms/{room}/send/m.room.message/spam",
                {"msgtype": "m.image", "body": "cat.png", "url": content_uri},
                tokens["mallory"],
            )["event_id"]
            call(
                server,
                "POST",
                f"/_matrix/client/v3/rooms/{room}/report/{quote(spam, safe='')}",
                {"reason": "Spam pictures again", "score": -100},
                tokens["bob"],
            )
            yield World(server, tokens, room_id, spam, content_uri.rsplit("/", 1)[1])
        finally:
            stop_homeserver(server)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("TRELLIS_SCREENSHOTS") == "1":
        target = PROJECT_ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")


def totp(secret: str, offset: int = 0) -> str:
    """RFC 6238 with SHA-1, 30 s and 6 digits, as authenticator apps compute it."""
    key = base64.b32decode(secret, casefold=True)
    counter = int(time.time()) // 30 + offset
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    start = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[start : start + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


class Portal:
    """The browser on the portal: pages by path, forms by their fields."""

    def __init__(self, driver: Any, server: LiveServer, shots: Path) -> None:
        self.driver = driver
        self.server = server
        self.shots = shots

    def open(self, path: str) -> None:
        self.driver.get(f"{self.server.url}{path}")

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def wait_for(self, css: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT_S).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
        )

    def fill(self, fields: dict[str, str]) -> None:
        for name, value in fields.items():
            element = self.find(f"[name='{name}']")
            element.clear()
            element.send_keys(value)

    def text(self) -> str:
        return str(self.find("body").text)

    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.server.url)

    def screenshot(self, name: str) -> None:
        # The whole page, not only the window: resize to the document's height first.
        # Wide enough for the lists' columns, without the navigation sidebar (Django keeps
        # its state in localStorage).
        self.driver.execute_script(
            "localStorage.setItem('django.admin.navSidebarIsOpen', 'false');"
            "document.querySelector('#main')?.classList.remove('shifted');"
        )
        self.driver.set_window_size(1440, 900)
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(1440, max(900, min(int(height) + 40, 2400)))
        path = self.shots / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), path
        assert path.stat().st_size > 10_000
        self.driver.set_window_size(1280, 900)

    def click_link(self, text: str, within: str = "body") -> None:
        from selenium.webdriver.common.by import By

        scope = self.find(within)
        scope.find_element(
            By.XPATH, f".//a[normalize-space()={json.dumps(text, ensure_ascii=False)}]"
        ).click()

    def first_result(self) -> None:
        """Open the first row of a list page."""
        self.wait_for("#result_list tbody tr")
        self.find("#result_list tbody tr th a").click()

    def act(self, button: str, fields: dict[str, bool | str]) -> str:
        """On an object's page: the action's button, its form, its success message."""
        self.click_link(button, within=".object-tools")
        form = self.wait_for("#content-main form")
        for name, value in fields.items():
            element = form.find_element("css selector", f"[name='{name}']")
            if isinstance(value, bool):
                if element.is_selected() != value:
                    element.click()
            else:
                element.clear()
                element.send_keys(value)
        form.find_element("css selector", "[type='submit']").click()
        return str(self.wait_for(".messagelist .success").text)

    def log_in(self, password: str = OPERATOR_PASSWORD) -> None:
        self.open("/admin/login/?next=/admin/")
        self.fill({"username": OPERATOR, "password": password})
        self.find("#login-form [type='submit']").click()


def test_an_operator_moderates_in_the_browser(world: World, shots: Path) -> None:
    with chromium() as driver:
        portal = Portal(driver, world.server, shots)

        # Logging in: the password alone, while two-factor login is off.
        portal.log_in()
        portal.wait_for("#trellis-dashboard")
        dashboard = portal.find("#trellis-dashboard").text
        assert re.search(r"Users\s+5\b", dashboard, re.IGNORECASE), dashboard
        assert "Running" in portal.find("#dash-worker").text, portal.find("#dash-worker").text
        assert re.search(r"Rooms\s+1\b", dashboard, re.IGNORECASE), dashboard
        assert len(portal.find_all("#dash-events-chart .bar")) == 24
        portal.screenshot("dashboard")

        # Two-factor login: scan (here: read) the key, confirm with a code and the password.
        portal.find("#dash-mfa a").click()
        secret = portal.wait_for("#totp-secret").text
        portal.fill({"code": totp(secret), "password": OPERATOR_PASSWORD})
        portal.find("#totp-activate [type='submit']").click()
        codes = portal.wait_for("#recovery-code-list").text.split()
        assert len(codes) == 10
        portal.screenshot("two-factor")

        # From now on the password leads to the code page; the next period's code logs in
        # (the current one was spent on the enrolment).
        driver.delete_all_cookies()
        portal.log_in()
        portal.wait_for("#mfa-form")
        assert portal.path() == "/admin/login/code/"
        portal.fill({"code": "000000"})
        portal.find("#mfa-form [type='submit']").click()
        assert "Incorrect code" in portal.wait_for(".errornote").text
        portal.screenshot("login-code")
        portal.fill({"code": totp(secret, offset=1)})
        portal.find("#mfa-form [type='submit']").click()
        portal.wait_for("#trellis-dashboard")

        server = world.server
        # Find a user and deactivate them.
        portal.open("/admin/accounts/user/")
        portal.fill({"q": "eve"})
        portal.find("#changelist-search [type='submit']").click()
        portal.first_result()
        assert server.user_id("eve") in portal.wait_for("#content-main").text
        portal.screenshot("user")
        done = portal.act("Deactivate…", {"confirm": True})
        assert "eve" in done, done
        eve_now = call_status(
            server, "GET", "/_matrix/client/v3/account/whoami", world.tokens["eve"]
        )
        assert eve_now == (401, "M_UNKNOWN_TOKEN")

        # The room's page.
        portal.open("/admin/rooms/room/")
        portal.first_result()
        assert "Garden club" in portal.wait_for("#content-main").text
        portal.screenshot("room")

        # The report queue; act on the report: redact the event, ban its sender, resolve.
        portal.open("/admin/rooms/eventreport/")
        portal.wait_for("#result_list")
        assert "Spam pictures again" in portal.text()
        portal.screenshot("reports")
        portal.first_result()
        assert world.reported_event_id in portal.wait_for("#content-main").text
        portal.screenshot("report")
        done = portal.act("Act on it…", {"redact": True, "ban": True, "reason": "Spam"})
        assert "redacted the event" in done, done
        assert "resolved the report" in done, done
        room = quote(world.room_id, safe="")
        event = call(
            server,
            "GET",
            f"/_matrix/client/v3/rooms/{room}/event/{quote(world.reported_event_id, safe='')}",
            token=world.tokens["bob"],
        )
        assert event["content"] == {}
        assert "redacted_because" in event["unsigned"]
        member = call(
            server,
            "GET",
            f"/_matrix/client/v3/rooms/{room}/state/m.room.member/"
            f"{quote(server.user_id('mallory'), safe='')}",
            token=world.tokens["alice"],
        )
        assert member["membership"] == "ban"

        # The media: mallory's picture, quarantined.
        download = (
            f"/_matrix/client/v1/media/download/{quote(server.server_name)}/{world.media_id}"
        )
        assert call_status(server, "GET", download, world.tokens["bob"])[0] == 200
        portal.open("/admin/media/localmedia/")
        portal.wait_for("#result_list")
        portal.screenshot("media")
        portal.first_result()
        assert world.media_id in portal.wait_for("#content-main").text
        done = portal.act("Quarantine…", {"confirm": True})
        assert "Quarantined 1" in done, done
        assert call_status(server, "GET", download, world.tokens["bob"]) == (404, "M_NOT_FOUND")

        # Everything the operator did, in the audit log.
        portal.open("/admin/operators/auditentry/")
        log = portal.wait_for("#result_list").text
        for action in (
            "mfa.enable",
            "user.deactivate",
            "report.redact_event",
            "report.ban_sender",
            "report.resolve",
            "media.quarantine",
        ):
            assert action in log, (action, log)
        assert server.user_id(OPERATOR) in log
        portal.screenshot("audit-log")

        # The dashboard after it all.
        portal.open("/admin/")
        assert "1 deactivated" in portal.wait_for("#dash-users").text
