"""Headless Chromium for the browser tests, driven by Selenium through chromedriver.

Both come from Debian's packages (``chromium``, ``chromium-driver``), which .ci/run
installs when they are missing; nothing downloads a browser. Under CI a missing browser
fails the test; elsewhere the test is skipped with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TRELLIS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TRELLIS_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install chromium chromium-driver"


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} not found; install with: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium(*, fake_media: bool = False, width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium (a ``selenium.webdriver.Chrome``) with a fresh profile.

    ``fake_media``: camera and microphone are Chromium's fake devices and the permission
    prompt is answered yes, for WebRTC calls.
    """
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="trellis-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    if fake_media:
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument("--use-fake-ui-for-media-stream")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
