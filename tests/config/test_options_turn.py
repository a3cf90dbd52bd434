"""The TURN settings: TRELLIS_TURN_URIS is checked at start-up, the secret goes with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import options

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value",
    [
        "turn:turn.example.org",
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:5349?transport=tcp",
        "turn:192.0.2.1:3478",
        "turn:[2001:db8::1]:3478?transport=udp",
    ],
)
def test_turn_uris_are_accepted(value: str) -> None:
    assert options.as_turn_uris(value, "TRELLIS_TURN_URIS") == [value]


def test_a_comma_separated_list_keeps_its_order() -> None:
    value = "turn:a.example.org:3478?transport=udp, turns:b.example.org:443?transport=tcp"

    assert options.as_turn_uris(value, "TRELLIS_TURN_URIS") == [
        "turn:a.example.org:3478?transport=udp",
        "turns:b.example.org:443?transport=tcp",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "stun:stun.example.org:3478",
        "http://turn.example.org:3478",
        "turn://turn.example.org:3478",
        "turn:turn.example.org:99999",
        "turn:turn.example.org:0",
        "turn:turn.example.org:3478?transport=sctp",
        "turn:",
        "turn:turn example.org",
    ],
)
def test_other_uris_are_refused(value: str) -> None:
    with pytest.raises(options.ConfigError, match="TRELLIS_TURN_URIS"):
        options.as_turn_uris(value, "TRELLIS_TURN_URIS")


@pytest.mark.parametrize("value", ["0", "-5", "a day"])
def test_the_ttl_must_be_a_positive_number_of_seconds(value: str) -> None:
    with pytest.raises(options.ConfigError, match="TRELLIS_TURN_TTL_S"):
        options.as_positive_int(value, "TRELLIS_TURN_TTL_S")


def test_the_settings_come_from_the_config_file_too(tmp_path: Path) -> None:
    config = tmp_path / "trellis.yaml"
    config.write_text("turn_uris: turn:t.example.org\nturn_shared_secret: s\nturn_ttl_s: 60\n")

    values = options.load({"TRELLIS_CONFIG": str(config)})

    assert values["turn_uris"] == "turn:t.example.org"
    assert values["turn_shared_secret"] == "s"
    assert values["turn_ttl_s"] == "60"


def test_a_config_file_may_list_the_uris(tmp_path: Path) -> None:
    config = tmp_path / "trellis.yaml"
    config.write_text(
        "turn_uris:\n  - turn:t.example.org:3478?transport=udp\n  - turns:t.example.org:5349\n"
    )

    values = options.load({"TRELLIS_CONFIG": str(config)})

    assert options.as_turn_uris(values["turn_uris"], "TRELLIS_TURN_URIS") == [
        "turn:t.example.org:3478?transport=udp",
        "turns:t.example.org:5349",
    ]


@pytest.mark.parametrize("value", ['["turn:a.example.org", 3]', '["stun:a.example.org"]', "[oops"])
def test_a_bad_list_is_refused(value: str) -> None:
    with pytest.raises(options.ConfigError, match="TRELLIS_TURN_URIS"):
        options.as_turn_uris(value, "TRELLIS_TURN_URIS")


def _settings_error(tmp_path: Path, **environ: str) -> str:
    """Load the settings in a fresh process, as the server starts; return its stderr."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TRELLIS_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update({"TRELLIS_DATA_DIR": str(tmp_path), **environ})
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stderr if result.returncode else ""


def test_a_bad_uri_stops_the_server_at_start_up(tmp_path: Path) -> None:
    error = _settings_error(
        tmp_path, TRELLIS_TURN_URIS="stun:x.example.org", TRELLIS_TURN_SHARED_SECRET="s"
    )

    assert "ConfigError" in error
    assert "TRELLIS_TURN_URIS" in error


def test_uris_without_a_secret_stop_the_server_at_start_up(tmp_path: Path) -> None:
    error = _settings_error(tmp_path, TRELLIS_TURN_URIS="turn:turn.example.org")

    assert "TRELLIS_TURN_SHARED_SECRET" in error


def test_both_settings_together_start(tmp_path: Path) -> None:
    assert (
        _settings_error(
            tmp_path, TRELLIS_TURN_URIS="turn:turn.example.org", TRELLIS_TURN_SHARED_SECRET="s"
        )
        == ""
    )
