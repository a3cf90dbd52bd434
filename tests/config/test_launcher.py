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
