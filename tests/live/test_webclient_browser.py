"""The demo web client at /client/ in real browsers against a real server: two users in
two headless Chromiums register, share a room, chat, and call each other over WebRTC
(Chromium's fake camera and microphone), signalled with m.call.* room events."""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.browser import chromium
from tests.live.conftest import LiveServer

pytestmark = pytest.mark.live

WAIT_S = 30
# ICE over host candidates between two browsers on one machine.
CONNECT_WAIT_S = 60


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return response.headers.get_content_type(), response.read().decode()


def test_the_page_and_every_module_it_loads_are_served(homeserver: LiveServer) -> None:
    content_type, page = _get(f"{homeserver.url}/client/")
    assert content_type == "text/html"
    assert 'type="module"' in page
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert stylesheets
    for href in stylesheets:
        assert _get(homeserver.url + href)[0] == "text/css"

    # Follow the module graph from the page's entry point: every import must be served
    # as JavaScript, from this server (no outside assets).
    pending = re.findall(r'<script type="module" src="([^"]+)"', page)
    assert pending == ["/static/webclient/main.js"]
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        content_type, source = _get(homeserver.url + path)
        assert content_type == "text/javascript", path
        base = path.rsplit("/", 1)[0]
        for target in re.findall(r'^import .* from "([^"]+)";$', source, re.MULTILINE):
            assert target.startswith("./"), target
            pending.append(f"{base}/{target.removeprefix('./')}")
    assert {p.rsplit("/", 1)[1] for p in seen} == {"main.js", "api.js", "store.js", "call.js"}


def test_the_bare_path_redirects_to_the_page(homeserver: LiveServer) -> None:
    with urllib.request.urlopen(f"{homeserver.url}/client", timeout=10) as response:
        assert response.url == f"{homeserver.url}/client/"


# --- In the browser ------------------------------------------------------------------------


def _until(driver: Any, condition: Callable[[Any], Any], timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _find(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _visible(css: str) -> Callable[[Any], Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return ec.visibility_of_element_located((By.CSS_SELECTOR, css))


def _present(css: str) -> Callable[[Any], Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return ec.presence_of_element_located((By.CSS_SELECTOR, css))


def _text_in(css: str, text: str) -> Callable[[Any], Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)


def _register(driver: Any, server: LiveServer, localpart: str) -> str:
    driver.get(f"{server.url}/client/")
    _until(driver, _visible("#username")).send_keys(localpart)
    _find(driver, "#password").send_keys("correct horse battery")
    _find(driver, "#register-button").click()
    user_id = server.user_id(localpart)
    _until(driver, _text_in("#whoami", user_id))
    return user_id


def _submit(driver: Any, field: str, text: str) -> None:
    box = _until(driver, _visible(field))
    from selenium.webdriver.common.keys import Keys

    box.clear()
    box.send_keys(text + Keys.ENTER)


def _call_section(driver: Any) -> Any:
    return _find(driver, "#call")


def _ice_connected(driver: Any) -> bool:
    # Chromium's controlling side may go on from "connected" to "completed".
    return _call_section(driver).get_attribute("data-ice-state") in ("connected", "completed")


def _page_token(driver: Any) -> str:
    token: str = driver.execute_script(
        'return JSON.parse(localStorage.getItem("trellis.webclient.session")).access_token'
    )
    return token


def _api(
    server: LiveServer, method: str, path: str, body: Any = None, token: str = ""
) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def _call_events(server: LiveServer, driver: Any, room_id: str) -> list[dict[str, Any]]:
    """The room's m.call.* events, oldest first, read with the page's own access token."""
    path = f"/rooms/{quote(room_id)}/messages?dir=b&limit=200"
    chunk = _api(server, "GET", path, token=_page_token(driver))["chunk"]
    return [e for e in reversed(chunk) if e["type"].startswith("m.call.")]


@pytest.fixture
def two_browsers() -> Iterator[tuple[Any, Any]]:
    with chromium(fake_media=True) as alice, chromium(fake_media=True) as bob:
        try:
            yield alice, bob
        finally:
            # Shown with a failure: what each page said in its console.
            for name, driver in (("alice", alice), ("bob", bob)):
                for entry in driver.get_log("browser"):
                    print(f"[{name}] {entry['level']} {entry['message']}")


def test_two_users_chat_and_call_each_other(
    homeserver: LiveServer, two_browsers: tuple[Any, Any]
) -> None:
    alice, bob = two_browsers
    suffix = secrets.token_hex(4)
    _register(alice, homeserver, f"alice-{suffix}")
    bob_id = _register(bob, homeserver, f"bob-{suffix}")

    # Alice creates a room (it opens) and invites Bob, who sees the invite and joins.
    room_name = f"Call test {suffix}"
    _submit(alice, "#new-room-name", room_name)
    _until(alice, _text_in("#room-title", room_name))
    room_id = _find(alice, "#room-view").get_attribute("data-room-id")
    _submit(alice, "#invite-user", bob_id)
    _until(bob, _visible(f'#room-list li.invite[data-room-id="{room_id}"] button.accept')).click()
    _until(bob, _text_in("#room-title", room_name))
    _until(alice, _text_in("#room-members", "2 members"))

    # Messages appear live on both sides.
    _submit(alice, "#message-input", "hello from alice")
    _until(bob, _text_in("#timeline", "hello from alice"))
    _submit(bob, "#message-input", "hi alice, bob here")
    _until(alice, _text_in("#timeline", "hi alice, bob here"))
    _until(alice, _text_in("#timeline", "hello from alice"))

    # Alice calls; Bob's client rings and he answers.
    _until(alice, lambda d: _find(d, "#call-button").is_enabled())
    _find(alice, "#call-button").click()
    _until(bob, _visible("#answer-button")).click()
    for driver in (alice, bob):
        _until(driver, _present('#timeline li[data-event-type="m.call.answer"]'))
    for driver in (alice, bob):
        _until(driver, _ice_connected, timeout=CONNECT_WAIT_S)
        assert _call_section(driver).get_attribute("data-call-state") == "connected"
    call_id = _call_section(alice).get_attribute("data-call-id")
    assert call_id
    assert _call_section(bob).get_attribute("data-call-id") == call_id
    # Alice's client chose Bob's answer.
    _until(bob, _present('#timeline li[data-event-type="m.call.select_answer"]'))

    # Alice hangs up: both see the hangup and their call UI closes.
    _find(alice, "#hangup-button").click()
    for driver in (alice, bob):
        _until(driver, _present('#timeline li[data-event-type="m.call.hangup"]'))
        _until(driver, lambda d: not _call_section(d).is_displayed())
        assert _call_section(driver).get_attribute("data-call-state") == ""

    # What went over the room, as the spec's VoIP module has it (version "1").
    events = _call_events(homeserver, alice, room_id)
    alice_id = homeserver.user_id(f"alice-{suffix}")
    for event in events:
        assert event["content"]["call_id"] == call_id
        assert event["content"]["version"] == "1"
        assert re.fullmatch(r"[A-Za-z0-9]{8,}", event["content"]["party_id"])
    by_type = {e["type"]: e for e in events}
    invite, answer = by_type["m.call.invite"], by_type["m.call.answer"]
    select, hangup = by_type["m.call.select_answer"], by_type["m.call.hangup"]
    assert invite["sender"] == alice_id
    assert invite["content"]["offer"]["type"] == "offer"
    assert "m=video" in invite["content"]["offer"]["sdp"]
    assert invite["content"]["lifetime"] >= 90000
    assert invite["content"]["invitee"] == bob_id
    assert answer["sender"] == bob_id
    assert answer["content"]["answer"]["type"] == "answer"
    assert select["sender"] == alice_id
    assert select["content"]["party_id"] == invite["content"]["party_id"]
    assert select["content"]["selected_party_id"] == answer["content"]["party_id"]
    assert hangup["sender"] == alice_id
    assert hangup["content"]["reason"] == "user_hangup"
    # Each side ends its candidates with the empty end-of-candidates candidate.
    for sender in (alice_id, bob_id):
        sent = [
            c
            for e in events
            if e["type"] == "m.call.candidates" and e["sender"] == sender
            for c in e["content"]["candidates"]
        ]
        assert sent
        assert sent[-1] == {"candidate": ""}
    order = [e["type"] for e in events if e["type"] != "m.call.candidates"]
    assert order == ["m.call.invite", "m.call.answer", "m.call.select_answer", "m.call.hangup"]


def _log_in(driver: Any, server: LiveServer, localpart: str) -> None:
    driver.get(f"{server.url}/client/")
    _until(driver, _visible("#username")).send_keys(localpart)
    _find(driver, "#password").send_keys("correct horse battery")
    _find(driver, "#login-button").click()
    _until(driver, _text_in("#whoami", server.user_id(localpart)))


def _room_item(room_id: str, extra: str = "") -> str:
    return f'#room-list li{extra}[data-room-id="{room_id}"]'


def test_rooms_by_alias_unread_counts_a_rejected_call_leave_and_log_out(
    homeserver: LiveServer, two_browsers: tuple[Any, Any]
) -> None:
    alice, bob = two_browsers
    suffix = secrets.token_hex(4)
    tokens = {}
    for name in ("carol", "dave"):
        tokens[name] = _api(
            homeserver,
            "POST",
            "/register",
            {
                "username": f"{name}-{suffix}",
                "password": "correct horse battery",
                "auth": {"type": "m.login.dummy"},
            },
        )["access_token"]
    lobby = _api(
        homeserver,
        "POST",
        "/createRoom",
        {"preset": "public_chat", "name": f"Lobby {suffix}", "room_alias_name": f"lobby-{suffix}"},
        tokens["carol"],
    )["room_id"]

    # Both log in with a password; Dave joins the lobby by its alias.
    _log_in(alice, homeserver, f"carol-{suffix}")
    _log_in(bob, homeserver, f"dave-{suffix}")
    _until(alice, _text_in(_room_item(lobby), f"Lobby {suffix}"))
    _submit(bob, "#join-target", f"#lobby-{suffix}:{homeserver.server_name}")
    _until(bob, _text_in("#room-title", f"Lobby {suffix}"))
    _until(bob, _text_in("#room-members", "2 members"))

    # Dave looks at a room of his own; Carol's message makes the lobby unread for him
    # until he opens it (a read receipt clears the count).
    _submit(bob, "#new-room-name", f"Dave's corner {suffix}")
    _until(bob, _text_in("#room-title", f"Dave's corner {suffix}"))
    _api(
        homeserver,
        "PUT",
        f"/rooms/{quote(lobby)}/send/m.room.message/t1",
        {"msgtype": "m.text", "body": "anyone here?"},
        tokens["carol"],
    )
    _until(bob, _text_in(_room_item(lobby, ".unread") + " .badge", "1"))
    _find(bob, _room_item(lobby)).click()
    _until(bob, _text_in("#timeline", "anyone here?"))
    _until(bob, lambda d: not d.find_elements("css selector", _room_item(lobby, ".unread")))

    # Carol calls; Dave rejects: both see m.call.reject and the call is over for both.
    _find(alice, _room_item(lobby)).click()
    _until(alice, lambda d: _find(d, "#call-button").is_enabled())
    _find(alice, "#call-button").click()
    _until(bob, _visible("#reject-button")).click()
    for driver in (alice, bob):
        _until(driver, _present('#timeline li[data-event-type="m.call.reject"]'))
        _until(driver, lambda d: not _call_section(d).is_displayed())
    _until(alice, _present('#timeline li[data-event-type="m.call.select_answer"]'))
    events = _call_events(homeserver, alice, lobby)
    reject = next(e for e in events if e["type"] == "m.call.reject")
    select = next(e for e in events if e["type"] == "m.call.select_answer")
    assert select["content"]["selected_party_id"] == reject["content"]["party_id"]
    assert not [e for e in events if e["type"] == "m.call.hangup"]

    # Dave leaves: the lobby is gone from his list, and Carol, alone, cannot call.
    _find(bob, _room_item(lobby)).click()
    _until(bob, _visible("#leave-button")).click()
    _until(bob, lambda d: not d.find_elements("css selector", _room_item(lobby)))
    _until(alice, _text_in("#room-members", "1 member"))
    assert not _find(alice, "#call-button").is_enabled()

    # Logging out ends the session on the server too.
    token = _page_token(bob)
    _find(bob, "#logout-button").click()
    _until(bob, _visible("#login-button"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        _api(homeserver, "GET", "/account/whoami", token=token)
    assert refused.value.code == 401
