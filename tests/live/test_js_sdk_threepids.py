"""matrix-js-sdk's own 3PID calls against a real homeserver process that mails its
links to an SMTP server (aiosmtpd) the test runs: registration with an email address
through the SDK's InteractiveAuth, getThreePids, login by the address, a forgotten
password reset with setPassword, and addThreePidOnly behind a password stage.

The script (tests/live/js/threepids.mjs) says when it waits for a link; the test reads
the mail at its SMTP server, opens the link over HTTP as a person's browser would, and
tells the script to go on (one line on its stdin).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.live.conftest import LiveServer, backend_environ, start_homeserver, stop_homeserver
from tests.live.js_sdk import JS_DIR, matrix_js_sdk
from tests.mail_sinks import SMTPSink, link_in, text_of

pytestmark = pytest.mark.live

__all__ = ["matrix_js_sdk"]  # fixture

SCRIPT_TIMEOUT_S = 180
EMAIL = "js-sdk@example.org"
SECOND_EMAIL = "js-sdk@work.example"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def mailing_homeserver(
    tmp_path_factory: pytest.TempPathFactory, smtp: SMTPSink
) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("js-threepids")
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(
            data_dir,
            backend,
            environ={
                "TRELLIS_SMTP_HOST": "127.0.0.1",
                "TRELLIS_SMTP_PORT": str(smtp.port),
                "TRELLIS_SMTP_SECURITY": "none",
            },
        )
        try:
            yield server
        finally:
            stop_homeserver(server)


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _open_link(server: LiveServer, smtp: SMTPSink, address: str, count: int) -> str:
    """Open the link of the ``count``-th mail to ``address``; its subject."""
    message = smtp.wait_for(address, count, timeout=60)
    link = link_in(message)
    assert link.startswith(f"{server.url}/_trellis/client/threepid/submit_token?"), link
    with urllib.request.urlopen(link, timeout=30) as page:
        assert page.status == 200
        assert "Address verified" in page.read().decode()
    return str(message["Subject"])


def test_js_sdk_registers_logs_in_resets_and_adds_by_email(
    mailing_homeserver: LiveServer, smtp: SMTPSink, matrix_js_sdk: Path, tmp_path: Path
) -> None:
    server = mailing_homeserver
    stderr_path = tmp_path / "node.stderr"
    with stderr_path.open("w") as stderr:
        script = subprocess.Popen(
            ["node", str(JS_DIR / "threepids.mjs")],
            env={
                **os.environ,
                "SDK": str(matrix_js_sdk),
                "HS_URL": server.url,
                "USERNAME": "jsthreepids",
                "PASSWORD": "js-sdk-password-1",
                "NEW_PASSWORD": "js-sdk-password-2",
                "EMAIL": EMAIL,
                "SECOND_EMAIL": SECOND_EMAIL,
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert script.stdin is not None
    assert script.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(script.stdout, lines), daemon=True).start()
    steps: list[dict[str, Any]] = []
    awaited: Counter[str] = Counter()
    subjects: list[str] = []
    deadline = time.monotonic() + SCRIPT_TIMEOUT_S
    try:
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            if line is None:
                break
            if not line.startswith("{"):
                continue
            said = json.loads(line)
            if said.get("await") == "link":
                awaited[said["to"]] += 1
                subjects.append(_open_link(server, smtp, said["to"], awaited[said["to"]]))
                script.stdin.write("opened\n")
                script.stdin.flush()
            else:
                steps.append(said)
        returncode = script.wait(timeout=30)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    assert returncode == 0, f"{steps}\n{stderr_path.read_text()[-4000:]}\n{server.log()[-4000:]}"
    assert [s["step"] for s in steps] == [
        "registration mail requested",
        "registered",
        "listed",
        "logged in by email",
        "reset mail requested",
        "password reset",
        "logged in with the new password",
        "add mail requested",
        "second address added",
        "done",
    ]
    assert steps[1]["user_id"] == server.user_id("jsthreepids")
    assert steps[-2]["threepids"] == sorted([EMAIL, SECOND_EMAIL])
    name = server.server_name
    assert subjects == [
        f"Confirm your email address for {name}",
        f"Reset your {name} password",
        f"Confirm the email address to add to your {name} account",
    ]
    # What the account's first address was told afterwards, by the worker.
    changed = smtp.wait_for(EMAIL, 3, timeout=60)
    assert changed["Subject"] == f"Your {name} password was changed"
    added = smtp.wait_for(EMAIL, 4, timeout=60)
    assert SECOND_EMAIL in text_of(added)
