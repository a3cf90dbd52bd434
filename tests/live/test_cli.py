"""The command-line client (trellis_cli) against a real homeserver, run as a user runs
it: ``python -m trellis_cli`` in a subprocess, each user with a config directory of
their own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live.conftest import PROJECT_ROOT, LiveServer
from tests.trellis_cli.test_images import png

pytestmark = pytest.mark.live

TIMEOUT_S = 120
PASSWORD = "cli-pw-41c7"


@dataclass
class User:
    """One person at a terminal: their own $XDG_CONFIG_HOME."""

    config_home: Path

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")}
        env["XDG_CONFIG_HOME"] = str(self.config_home)
        return env

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trellis_cli", *args],
            cwd=PROJECT_ROOT,
            env=self.environ(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )

    def ok(self, *args: str, stdin: str = "") -> list[str]:
        """Run a command that must succeed; its standard output's lines."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout.splitlines()

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "trellis_cli", *args],
            cwd=PROJECT_ROOT,
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def session(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.session_path().read_text())
        return data

    def session_path(self) -> Path:
        return self.config_home / "trellis-cli" / "session.json"


def registered(homeserver: LiveServer, tmp_path: Path, localpart: str) -> User:
    user = User(tmp_path / localpart)
    lines = user.ok("register", "--homeserver", homeserver.url, localpart, "--password", PASSWORD)
    assert lines == [homeserver.user_id(localpart)]
    return user


def test_register_keeps_the_session_for_its_owner_only(
    homeserver: LiveServer, tmp_path: Path
) -> None:
    dana = registered(homeserver, tmp_path, "cli-dana")

    mode = stat.S_IMODE(dana.session_path().stat().st_mode)
    assert mode == 0o600
    assert dana.session()["homeserver"] == homeserver.url
    assert dana.session()["user_id"] == homeserver.user_id("cli-dana")
    assert dana.ok("whoami")[0] == homeserver.user_id("cli-dana")


def test_login_whoami_and_logout(homeserver: LiveServer, tmp_path: Path) -> None:
    registered(homeserver, tmp_path, "cli-erin")
    laptop = User(tmp_path / "laptop")

    laptop.ok("login", "--homeserver", homeserver.url, "cli-erin", stdin=f"{PASSWORD}\n")
    token = laptop.session()["access_token"]
    assert laptop.ok("whoami")[0] == homeserver.user_id("cli-erin")
    assert laptop.ok("logout") == ["logged out"]

    assert not laptop.session_path().exists()
    after = laptop.run("whoami")
    assert after.returncode == 1
    assert "not logged in" in after.stderr
    request = urllib.request.Request(
        f"{homeserver.url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


def test_a_wrong_password_is_a_matrix_error(homeserver: LiveServer, tmp_path: Path) -> None:
    registered(homeserver, tmp_path, "cli-frank")

    result = User(tmp_path / "other").run(
        "login", "--homeserver", homeserver.url, "cli-frank", "--password", "wrong"
    )

    assert result.returncode == 1
    assert result.stderr.startswith("M_FORBIDDEN: ")


def test_tail_prints_a_message_another_user_sends(homeserver: LiveServer, tmp_path: Path) -> None:
    alice = registered(homeserver, tmp_path, "cli-alice")
    bob = registered(homeserver, tmp_path, "cli-bob")
    room_id = alice.ok("create-room", "--name", "CLI lobby", "--public", "--alias", "cli-lobby")[0]
    alias = f"#cli-lobby:{homeserver.server_name}"
    assert bob.ok("join", alias) == [room_id]
    assert f"{room_id}\tCLI lobby" in bob.ok("rooms")
    direct = alice.ok("create-room", "--invite", homeserver.user_id("cli-bob"))[0]
    bob.ok("join", direct)
    # No name: called after the other member (the display name is the localpart).
    assert f"{direct}\tcli-alice" in bob.ok("rooms")

    tail = bob.start("tail", alias, "--count", "2")
    try:
        assert tail.stderr is not None
        # tail says on standard error when it has its position; sent after that, the
        # messages are new to it.
        assert tail.stderr.readline().startswith(f"following {room_id}")
        alice.ok("send", room_id, "hello from the command line")
        alice.ok("send", room_id, "-", stdin="piped in\n")
        stdout, stderr = tail.communicate(timeout=TIMEOUT_S)
    finally:
        tail.kill()
        tail.wait()

    assert tail.returncode == 0, stderr
    assert stdout.splitlines() == [
        f"{homeserver.user_id('cli-alice')}: hello from the command line",
        f"{homeserver.user_id('cli-alice')}: piped in",
    ]


def test_upload_a_file_and_send_it_to_a_room(homeserver: LiveServer, tmp_path: Path) -> None:
    grace = registered(homeserver, tmp_path, "cli-grace")
    room_id = grace.ok("create-room")[0]
    picture = tmp_path / "dot.png"
    picture.write_bytes(png(3, 2))

    mxc, event_id = grace.ok("upload", str(picture), "--room", room_id)

    assert mxc.startswith(f"mxc://{homeserver.server_name}/")
    token = grace.session()["access_token"]
    media_id = mxc.rsplit("/", 1)[1]
    download = urllib.request.Request(
        f"{homeserver.url}/_matrix/client/v1/media/download/{homeserver.server_name}/{media_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(download, timeout=30) as response:
        assert response.read() == picture.read_bytes()
    event = urllib.request.Request(
        f"{homeserver.url}/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(event, timeout=30) as response:
        content = json.loads(response.read())["content"]
    assert content == {
        "msgtype": "m.image",
        "body": "dot.png",
        "filename": "dot.png",
        "url": mxc,
        "info": {"mimetype": "image/png", "size": len(picture.read_bytes()), "w": 3, "h": 2},
    }


def test_joining_a_room_that_does_not_exist_prints_the_matrix_error(
    homeserver: LiveServer, tmp_path: Path
) -> None:
    henry = registered(homeserver, tmp_path, "cli-henry")

    result = henry.run("join", f"#nowhere:{homeserver.server_name}")

    assert result.returncode == 1
    assert result.stderr.startswith("M_NOT_FOUND: ")
    assert result.stdout == ""


def test_tail_refuses_a_room_one_is_not_in(homeserver: LiveServer, tmp_path: Path) -> None:
    ivy = registered(homeserver, tmp_path, "cli-ivy")
    jack = registered(homeserver, tmp_path, "cli-jack")
    room_id = ivy.ok("create-room", "--public")[0]

    result = jack.run("tail", room_id, "--count", "1")

    assert result.returncode == 1
    assert result.stderr == f"error: you are not in {room_id}: `trellis join` it first\n"
