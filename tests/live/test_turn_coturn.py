"""TURN credentials from GET /voip/turnServer work on a real coturn.

coturn (Debian's package, installed by .ci/run) runs on loopback with
``use-auth-secret`` and the secret Trellis is configured with; ``turnutils_uclient``,
shipped with coturn, allocates a relay with the username and password Trellis handed
out (directly, and as matrix-js-sdk fetched them), and is refused with a wrong password
or an expired username. Without coturn (or Node for the SDK) the tests skip, except
under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import (
    LiveServer,
    backend_environ,
    free_port,
    start_homeserver,
    stop_homeserver,
)
from tests.live.test_js_sdk import JS_DIR, matrix_js_sdk  # noqa: F401 (a fixture)
from voip.credentials import turn_password

pytestmark = pytest.mark.live

SECRET = "live-turn-secret-7f3a"
START_TIMEOUT_S = 30
CLIENT_TIMEOUT_S = 60
PASSWORD = "pw-turn-9c"


def _require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (apt-get install coturn)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Coturn:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    turnserver = _require("turnserver")
    _require("turnutils_uclient")
    root = tmp_path_factory.mktemp("coturn")
    port = free_port()
    log_path = root / "turnserver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                turnserver,
                "-n",  # no configuration file: everything is on this line
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                "--use-auth-secret",
                f"--static-auth-secret={SECRET}",
                "--realm=trellis.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--log-file=stdout",
                "--simple-log",
                f"--pidfile={root / 'turnserver.pid'}",
                f"--userdb={root / 'turndb'}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Coturn(port, process, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "turn server id=0 created" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"turnserver did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def trellis(tmp_path_factory: pytest.TempPathFactory, coturn: Coturn) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("turn-homeserver")
    environ = {
        "TRELLIS_TURN_URIS": f"turn:127.0.0.1:{coturn.port}?transport=udp",
        "TRELLIS_TURN_SHARED_SECRET": SECRET,
        "TRELLIS_TURN_TTL_S": "600",
    }
    with backend_environ(data_dir, slot=1) as backend:
        running = start_homeserver(data_dir, backend, environ=environ)
        try:
            yield running
        finally:
            stop_homeserver(running)


def call(server: LiveServer, method: str, path: str, body: Any = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def turn_server(trellis: LiveServer, localpart: str) -> dict[str, Any]:
    """Register ``localpart``; GET /voip/turnServer as them."""
    body = {"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
    token = call(trellis, "POST", "register", body)["access_token"]
    answer: dict[str, Any] = call(trellis, "GET", "voip/turnServer", token=token)
    return answer


def allocate(coturn: Coturn, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """Allocate a relay on coturn as ``username`` and send a message through it."""
    return subprocess.run(
        [
            "turnutils_uclient",
            "-u",
            username,
            "-w",
            password,
            "-p",
            str(coturn.port),
            "-n",
            "1",
            "-m",
            "1",
            "-y",  # client to client through the relay: no peer program needed
            "-e",
            "127.0.0.1",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )


def test_coturn_accepts_the_credentials_trellis_hands_out(
    coturn: Coturn, trellis: LiveServer
) -> None:
    answer = turn_server(trellis, "caller")

    assert answer["uris"] == [f"turn:127.0.0.1:{coturn.port}?transport=udp"]
    assert answer["username"].endswith(f":{trellis.user_id('caller')}")
    result = allocate(coturn, answer["username"], answer["password"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Cannot complete Allocation" not in result.stdout
    assert "tot_recv_msgs=" in result.stdout


def test_coturn_refuses_a_wrong_password(coturn: Coturn, trellis: LiveServer) -> None:
    answer = turn_server(trellis, "intruder")

    result = allocate(coturn, answer["username"], answer["password"][::-1])

    assert result.returncode != 0
    assert "Cannot complete Allocation" in result.stdout + result.stderr


def test_coturn_refuses_an_expired_username(coturn: Coturn, trellis: LiveServer) -> None:
    answer = turn_server(trellis, "latecomer")
    user_id = answer["username"].split(":", 1)[1]
    # Signed with the right secret, as Trellis signs, but its expiry has passed.
    expired = f"{int(time.time()) - 60}:{user_id}"

    result = allocate(coturn, expired, turn_password(SECRET, expired))

    assert result.returncode != 0
    assert "Cannot complete Allocation" in result.stdout + result.stderr


def test_matrix_js_sdk_gets_credentials_coturn_accepts(
    coturn: Coturn,
    trellis: LiveServer,
    matrix_js_sdk: Path,  # noqa: F811
) -> None:
    turn_server(trellis, "sdk-caller")  # registers the account
    before_ms = time.time() * 1000
    result = subprocess.run(
        ["node", str(JS_DIR / "turn_servers.mjs")],
        env={
            **os.environ,
            "SDK": str(matrix_js_sdk),
            "HS_URL": trellis.url,
            "USER_ID": trellis.user_id("sdk-caller"),
            "PASSWORD": PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, f"{lines}\n{result.stderr[-4000:]}"

    ((answer,),) = [line["servers"] for line in lines if "servers" in line]
    # The SDK's RTCIceServer: our URIs, username and password under WebRTC's names.
    assert answer["urls"] == [f"turn:127.0.0.1:{coturn.port}?transport=udp"]
    assert answer["username"].endswith(f":{trellis.user_id('sdk-caller')}")
    # It refreshes them before the 600 s TTL runs out.
    assert lines[-1]["expiry_ms"] >= before_ms + 600_000
    allocated = allocate(coturn, answer["username"], answer["credential"])
    assert allocated.returncode == 0, allocated.stdout + allocated.stderr
