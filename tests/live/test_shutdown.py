"""Ctrl-C stops the whole homeserver: web server, worker and anything they started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.live.conftest import (
    STOP_TIMEOUT_S,
    backend_environ,
    start_homeserver,
    stop_homeserver,
)

pytestmark = pytest.mark.live

WORKER_READY_TIMEOUT_S = 60


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for_log_line(log: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(encoding="utf-8", errors="replace"):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not in the log after {timeout_s} s:\n{log.read_text()}")
        time.sleep(0.25)


def test_ctrl_c_stops_web_server_and_worker(tmp_path: Path) -> None:
    with backend_environ(tmp_path, slot=1) as backend:
        server = start_homeserver(tmp_path, backend)
        try:
            # The worker thread says "Celery worker <name> ready." once it consumes tasks.
            wait_for_log_line(server.log_path, " ready.", WORKER_READY_TIMEOUT_S)
            children = descendants(server.process.pid)

            # Ctrl-C in a terminal signals the whole foreground process group.
            os.killpg(server.process.pid, signal.SIGINT)
            try:
                status = server.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {STOP_TIMEOUT_S} s after SIGINT:\n{server.log()}")

            assert status == 0, server.log()
            assert [pid for pid in children if is_running(pid)] == [], server.log()
            assert "Trellis stopped" in server.log()
            assert "Celery worker" in server.log()
            assert "Traceback" not in server.log()
        finally:
            stop_homeserver(server)
