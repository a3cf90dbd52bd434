"""The demo web client's page (webclient/views.py). Its modules are static files, served
by the ASGI static handler; tests/live/test_webclient_browser.py fetches them from a
running server and drives the page in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.test import Client

STATIC = Path(__file__).resolve().parents[2] / "webclient" / "static" / "webclient"


def test_the_page_loads_only_this_server_s_assets(client: Client) -> None:
    response = client.get("/client/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/webclient/main.js" in assets
    for asset in assets:
        if asset == "data:,":  # the empty favicon
            continue
        assert asset.startswith("/static/webclient/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset


def test_every_module_import_is_relative_and_exists() -> None:
    for module in STATIC.glob("*.js"):
        for target in re.findall(r'^import .* from "([^"]+)";$', module.read_text(), re.M):
            assert target.startswith("./"), (module.name, target)
            assert (STATIC / target.removeprefix("./")).is_file(), (module.name, target)


def test_the_bare_path_redirects_and_only_get_is_allowed(client: Client) -> None:
    response = client.get("/client")
    assert response.status_code == 302
    assert response["Location"] == "/client/"
    assert client.post("/client/").status_code == 405
