"""matrix-js-sdk for the live tests: the pinned SDK, installed once per machine.

The SDK version is pinned in tests/live/js/package-lock.json. It is installed with
``npm ci`` into a cache directory outside the repository, keyed by the lock file, the
first time a test asks for it on a machine (``TRELLIS_JS_CACHE`` or ~/.cache/trellis/js);
without Node and npm the test is skipped, except in CI, where it fails.

The test modules import the fixture by name, which pytest then finds in the module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
NPM_TIMEOUT_S = 600


def _cache_root() -> Path:
    configured = os.environ.get("TRELLIS_JS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trellis" / "js"


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        message = f"{tool} is not installed (Node.js 20 or newer is needed)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def matrix_js_sdk() -> Path:
    """The installed SDK's entry point (lib/index.js), installed with npm ci if need be."""
    node, npm = _require("node"), _require("npm")
    lock = (JS_DIR / "package-lock.json").read_bytes()
    target = _cache_root() / hashlib.sha256(lock).hexdigest()[:16]
    if not target.exists():
        # Installed beside the target and moved into place whole: a run that stops
        # halfway, or another one installing at the same time, leaves no partial copy.
        building = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(JS_DIR / name, building / name)
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=building,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        if installed.returncode != 0:
            pytest.fail(f"npm ci failed:\n{installed.stdout}\n{installed.stderr}")
        try:
            building.rename(target)
        except OSError:  # installed meanwhile by another run
            shutil.rmtree(building, ignore_errors=True)
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"Node {version} is too old"
    entry = target / "node_modules" / "matrix-js-sdk" / "lib" / "index.js"
    assert entry.exists(), entry
    return entry
