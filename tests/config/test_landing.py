"""GET /: a page for a person who opens the server's address in a browser."""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

import pytest
from django.test import Client


@pytest.fixture
def page(settings: Any) -> Any:
    settings.SERVER_NAME = "chat.example.org"
    settings.PUBLIC_BASEURL = "https://matrix.example.org/"
    return Client().get("/")


def test_the_landing_page_is_html(page: Any) -> None:
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert b"<title>chat.example.org" in page.content


def test_it_names_the_server_and_the_trellis_version(page: Any) -> None:
    text = page.content.decode()

    assert "chat.example.org" in text
    assert "https://matrix.example.org/" in text
    assert f"Trellis {metadata.version('trellis')}" in text


def test_it_links_to_the_web_client_and_the_admin_portal(page: Any) -> None:
    links = re.findall(r'href="([^"]+)"', page.content.decode())

    assert "/client/" in links
    assert "/admin/" in links


def test_it_loads_nothing_from_elsewhere(page: Any) -> None:
    text = page.content.decode()

    # No scripts, style sheets, images or fonts fetched: the style is inline, the logo SVG.
    assert "<script" not in text
    assert "<link" not in text
    assert "<img" not in text
    assert not re.search(r"\bsrc=", text)
    assert not re.search(r"url\(", text)
    assert "@import" not in text


def test_head_is_answered_too(settings: Any) -> None:
    response = Client().head("/")

    assert response.status_code == 200
    assert response.content == b""


def test_other_methods_are_not_allowed() -> None:
    response = Client().post("/")

    assert response.status_code == 405


def test_other_paths_are_still_matrix_404s() -> None:
    response = Client().get("/nothing-here")

    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
