"""The embedded launcher and the worker's own scheduler (no beat process)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from config import celery as celery_module

ROOT = Path(__file__).resolve().parents[2]


def test_the_launcher_imports_neither_django_nor_celery() -> None:
    # The supervisor of `make run` stays a few megabytes: it must not load the app.
    probe = (
        "import sys, config.launcher; "
        "print(sorted(m for m in ('django', 'celery', 'rest_framework') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_embedded_scheduler_sends_each_periodic_task_when_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[str] = []
    done = threading.Event()

    def fake_send_task(name: str, *args: Any, **kwargs: Any) -> None:
        sent.append(name)
        done.set()
        celery_module._scheduler_stop.set()

    monkeypatch.setitem(
        celery_module.app.conf,
        "beat_schedule",
        {"tick": {"task": "accounts.tasks.purge_expired_auth_state", "schedule": 0.01}},
    )
    monkeypatch.setattr(celery_module.app, "send_task", fake_send_task)
    monkeypatch.setattr(celery_module, "_POLL_S", 0.01)
    celery_module._scheduler_stop.clear()
    thread = threading.Thread(target=celery_module._run_embedded_schedule, daemon=True)
    thread.start()
    assert done.wait(timeout=10)
    thread.join(timeout=10)
    assert sent == ["accounts.tasks.purge_expired_auth_state"]
    celery_module._scheduler_stop.clear()


def test_a_port_in_use_is_said_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TRELLIS_", "DJANGO_")) and key not in ("DATABASE_URL",)
        }
        env.update(TRELLIS_DATA_DIR=str(tmp_path), TRELLIS_BIND=f"127.0.0.1:{port}")
        out = subprocess.run(
            [sys.executable, "-m", "config.launcher"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"Cannot listen on 127.0.0.1:{port} (TRELLIS_BIND): Address already in use"
    ]
    assert "Starting Trellis" not in out.stdout
    # Nothing was made: not even the signing key.
    assert not list(tmp_path.iterdir())
