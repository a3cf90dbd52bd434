"""The Celery worker runs inside the homeserver process and does its tasks there."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.live.conftest import LiveServer

pytestmark = pytest.mark.live

TASK_TIMEOUT_S = 30


def _post(url: str, body: bytes, headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_an_upload_is_thumbnailed_by_the_worker_thread_of_the_server_process(
    homeserver: LiveServer,
) -> None:
    registered = _post(
        f"{homeserver.url}/_matrix/client/v3/register",
        json.dumps(
            {
                "username": "worker_probe",
                "password": "pw-8c1e7a",
                "auth": {"type": "m.login.dummy"},
            }
        ).encode(),
        {"Content-Type": "application/json"},
    )
    image = io.BytesIO()
    Image.new("RGB", (900, 700), (10, 120, 200)).save(image, "PNG")
    uploaded = _post(
        f"{homeserver.url}/_matrix/media/v3/upload?filename=probe.png",
        image.getvalue(),
        {"Content-Type": "image/png", "Authorization": f"Bearer {registered['access_token']}"},
    )
    assert str(uploaded["content_uri"]).startswith("mxc://")

    # The upload queues the pre-generation of thumbnails; the worker logs its success.
    deadline = time.monotonic() + TASK_TIMEOUT_S
    done = "media.tasks.pregenerate_thumbnails"
    while not any(done in line and "succeeded" in line for line in homeserver.log().splitlines()):
        if time.monotonic() > deadline:
            pytest.fail(f"no worker ran {done} within {TASK_TIMEOUT_S} s:\n{homeserver.log()}")
        time.sleep(0.25)
    # One process: the worker is a thread of the server, not a child process.
    tasks = Path(f"/proc/{homeserver.process.pid}/task")
    children = [(task / "children").read_text().split() for task in tasks.iterdir()]
    assert [pid for pids in children for pid in pids] == []
