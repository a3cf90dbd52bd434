"""matrix-js-sdk's search calls against a running homeserver, as Element makes them: room
search (``searchRoomEvents``, ``search``, ``backPaginateRoomEventsSearch``), the space
hierarchy (``getRoomHierarchy``) and the user directory (``searchUserDirectory``).

The script (tests/live/js/directory_search_hierarchy.mjs) checks each answer itself and
says which step failed; the test then checks the steps it printed. The pinned SDK is
installed by tests/live/js_sdk.py (once per machine; without Node and npm the test is
skipped, except in CI, where it fails).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import LiveServer
from tests.live.js_sdk import JS_DIR, matrix_js_sdk
from tests.live.test_js_sdk import _register

pytestmark = pytest.mark.live

__all__ = ["matrix_js_sdk"]  # fixture

SCRIPT_TIMEOUT_S = 180
PERSONAS = ("alice", "bob", "carol", "dave")


def test_js_sdk_searches_rooms_spaces_and_users(
    homeserver: LiveServer, matrix_js_sdk: Path
) -> None:
    users: dict[str, dict[str, Any]] = {name: _register(homeserver) for name in PERSONAS}
    result = subprocess.run(
        ["node", str(JS_DIR / "directory_search_hierarchy.mjs")],
        env={
            **os.environ,
            "SDK": str(matrix_js_sdk),
            "HS_URL": homeserver.url,
            "USERS": json.dumps(users),
            "TAG": secrets.token_hex(4),
        },
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )
    steps = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, f"{steps}\n{result.stderr[-4000:]}\n{homeserver.log()[-4000:]}"
    expected = [
        "rooms",
        "searched recent",
        "searched filtered",
        "searched by rank",
        "searched page by page",
        "hierarchy",
        "hierarchy paginated",
        "hierarchy filtered",
        "user directory",
        "done",
    ]
    assert [s["step"] for s in steps] == expected
    by_step = {s["step"]: s for s in steps}
    assert len(by_step["searched recent"]["results"]) == 3
    # A full page may still name a next_batch whose page is empty (as Synapse's does).
    pages = by_step["searched page by page"]["pages"]
    assert [len(page) for page in pages if page] == [1, 1, 1], pages
    assert by_step["hierarchy paginated"]["pages"] == [
        ["Top space", "General"],
        ["Random", "Sub-space"],
        ["Deep"],
    ]
    found = by_step["user directory"]["found"]
    assert found == sorted([users["bob"]["user_id"], users["dave"]["user_id"]])
