"""The command-line client without a server: arguments, the stored session, how errors
are shown, registration's interactive auth, and how messages are printed."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trellis_cli import commands, session
from trellis_cli.cli import DEFAULT_HOMESERVER, build_parser, main
from trellis_cli.client import MatrixClient, MatrixHTTPError, normalise_homeserver


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("TRELLIS_HOMESERVER", raising=False)
    return tmp_path


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_login_takes_a_homeserver_and_defaults_to_the_local_one() -> None:
    assert parse("login", "alice").homeserver == DEFAULT_HOMESERVER
    given = parse("login", "--homeserver", "https://matrix.example.org", "alice")
    assert given.homeserver == "https://matrix.example.org"
    assert given.username == "alice"
    assert given.run is commands.login


def test_the_homeserver_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRELLIS_HOMESERVER", "https://hs.example.org")

    assert parse("register", "bob").homeserver == "https://hs.example.org"


def test_send_takes_a_room_and_a_text() -> None:
    args = parse("send", "!room:example.org", "hi there")

    assert (args.room, args.text, args.notice) == ("!room:example.org", "hi there", False)


@pytest.mark.parametrize("count", ["0", "-1", "many"])
def test_tail_count_must_be_a_positive_number(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("tail", "!room:example.org", "--count", count)

    assert exited.value.code == 2
    assert "--count" in capsys.readouterr().err


def test_tail_without_count_runs_until_stopped() -> None:
    assert parse("tail", "#lobby:example.org").count is None
    assert parse("tail", "#lobby:example.org", "--count", "3").count == 3


@pytest.mark.parametrize(
    "argv", [[], ["frobnicate"], ["send", "!room:example.org"], ["upload"], ["join"]]
)
def test_missing_or_unknown_arguments_exit_with_status_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2


def test_create_room_options() -> None:
    args = parse(
        "create-room", "--name", "Lobby", "--public", "--invite", "@a:x", "--invite", "@b:x"
    )

    assert (args.name, args.public, args.invite) == ("Lobby", True, ["@a:x", "@b:x"])


def test_commands_that_need_a_session_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whoami"]) == 1

    assert capsys.readouterr().err == (
        "error: not logged in: run `trellis login` or `trellis register` first\n"
    )


def test_a_matrix_error_is_printed_as_errcode_and_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    session.save(session.Session("http://127.0.0.1:1", "@a:x", "DEV", "tok"))

    def refuse(self: MatrixClient, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        raise MatrixHTTPError("M_UNKNOWN_TOKEN", "Unknown access token", 401)

    monkeypatch.setattr(MatrixClient, "request", refuse)

    assert main(["rooms"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "M_UNKNOWN_TOKEN: Unknown access token\n"
    assert captured.out == ""


def test_an_unreachable_server_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 1.
    status = main(["login", "--homeserver", "http://127.0.0.1:1", "alice", "--password", "pw"])

    assert status == 1
    assert capsys.readouterr().err.startswith("error: cannot reach http://127.0.0.1:1")


def test_the_session_file_is_its_owners_only(config_home: Path) -> None:
    stored = session.Session("https://hs.example.org", "@a:hs.example.org", "DEV", "secret")

    path = session.save(stored)

    assert path == config_home / "trellis-cli" / "session.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session.load() == stored


def test_a_file_left_readable_by_others_is_closed_when_saved_again(config_home: Path) -> None:
    path = config_home / "trellis-cli" / "session.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    path.chmod(0o644)

    session.save(session.Session("https://hs.example.org", "@a:hs.example.org", "D", "t"))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_session_file_is_an_error(
    config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_home / "trellis-cli" / "session.json"
    path.parent.mkdir(parents=True)
    path.write_text("not json")

    assert main(["whoami"]) == 1
    assert "is not a session file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("matrix.example.org", "https://matrix.example.org"),
        ("http://127.0.0.1:8008/", "http://127.0.0.1:8008"),
        ("https://hs.example.org", "https://hs.example.org"),
    ],
)
def test_homeserver_urls_are_normalised(given: str, base: str) -> None:
    assert normalise_homeserver(given) == base


class FakeRegistration:
    """A server whose /register asks for the given stages, one request each."""

    def __init__(self, stages: list[str]) -> None:
        self.stages = stages
        self.bodies: list[dict[str, Any]] = []

    def post(self, path: str, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        done = [a for a in (b.get("auth", {}).get("type") for b in self.bodies) if a]
        if done == self.stages:
            return {"user_id": "@new:x", "access_token": "t", "device_id": "D"}
        raise MatrixHTTPError(
            "M_UNAUTHORIZED",
            "",
            401,
            {"flows": [{"stages": self.stages}], "session": "S", "completed": done},
        )


def test_registration_completes_the_dummy_stage() -> None:
    server = FakeRegistration(["m.login.dummy"])
    challenge = {"flows": [{"stages": ["m.login.dummy"]}], "session": "S", "completed": []}

    answer = commands.complete_uia(server, "register", {"username": "new"}, challenge, None)  # type: ignore[arg-type]

    assert answer["user_id"] == "@new:x"
    assert server.bodies == [
        {"username": "new", "auth": {"type": "m.login.dummy", "session": "S"}}
    ]


def test_registration_sends_a_token_when_asked_for_one() -> None:
    stages = ["m.login.registration_token", "m.login.dummy"]
    server = FakeRegistration(stages)
    challenge = {"flows": [{"stages": stages}], "session": "S", "completed": []}

    commands.complete_uia(server, "register", {}, challenge, "tok-123")  # type: ignore[arg-type]

    assert [b["auth"] for b in server.bodies] == [
        {"type": "m.login.registration_token", "session": "S", "token": "tok-123"},
        {"type": "m.login.dummy", "session": "S"},
    ]


def test_registration_stages_this_client_cannot_do_are_an_error() -> None:
    challenge = {"flows": [{"stages": ["m.login.registration_token"]}], "session": "S"}

    with pytest.raises(commands.CLIError, match="--registration-token"):
        commands.complete_uia(FakeRegistration([]), "register", {}, challenge, None)  # type: ignore[arg-type]


def test_room_arguments_must_be_ids_or_aliases() -> None:
    client = MatrixClient("https://hs.example.org")

    assert commands.room_id_of(client, "!abc:hs.example.org") == "!abc:hs.example.org"
    with pytest.raises(commands.CLIError, match="neither a room ID"):
        commands.room_id_of(client, "lobby")


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ({"msgtype": "m.text", "body": "hi"}, "@a:x: hi"),
        ({"msgtype": "m.emote", "body": "waves"}, "@a:x: * waves"),
        (
            {"msgtype": "m.image", "body": "cat.png", "url": "mxc://x/abc"},
            "@a:x: [m.image] cat.png mxc://x/abc",
        ),
    ],
)
def test_messages_are_printed_one_per_line(content: dict[str, Any], line: str) -> None:
    assert (
        commands.describe({"sender": "@a:x", "type": "m.room.message", "content": content}) == line
    )


def test_the_tail_filter_asks_for_one_room_and_nothing_else() -> None:
    sync_filter = json.loads(commands.tail_filter("!r:x", 100))

    assert sync_filter["room"]["rooms"] == ["!r:x"]
    assert sync_filter["room"]["timeline"] == {"limit": 100}
    assert sync_filter["presence"] == {"not_types": ["*"]}


def test_trellis_is_installed_as_a_console_script() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="trellis")
    installed = Path(sys.executable).parent / "trellis"

    assert script.value == "trellis_cli.cli:main"
    result = subprocess.run(
        [str(installed), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: trellis ")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")}
    assert {"register", "login", "whoami", "logout", "rooms", "create-room"} <= listed
    assert {"join", "send", "tail", "upload"} <= listed


@pytest.mark.parametrize(
    ("others", "name"),
    [
        ([], "Empty room"),
        (["Bob"], "Bob"),
        (["Bob", "Carol"], "Bob and Carol"),
        (["A", "B", "C", "D", "E"], "A, B, C, D and E"),
        (["A", "B", "C", "D", "E", "F", "G"], "A, B, C, D, E and 2 others"),
    ],
)
def test_a_room_without_a_name_is_called_after_its_other_members(
    others: list[str], name: str
) -> None:
    assert commands.members_name(others) == name
