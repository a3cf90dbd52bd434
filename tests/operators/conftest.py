"""Fixtures for the admin API tests: a server admin persona (``admin``), the media
storage of tests/media, and a helper for /_synapse/admin paths."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from accounts.models import User
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import media_root  # noqa: F401  (a fresh media storage per test)

ADMIN_V1 = "/_synapse/admin/v1"
ADMIN_V2 = "/_synapse/admin/v2"


def q(value: str) -> str:
    """A path parameter, percent-encoded as a client sends it."""
    return quote(value, safe="")


@pytest.fixture
def admin(api: MatrixTestClient) -> Persona:
    persona = api.register("admin")
    User.objects.filter(localpart="admin").update(is_staff=True)
    return persona


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")


@pytest.fixture(autouse=True)
def _no_waiting_room_deletions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Room deletions purge at once, and the sweep takes up any unfinished one: the test
    about the purge's grace period sets its own."""
    from operators.services import rooms

    monkeypatch.setattr(rooms, "PURGE_GRACE_MS", 0)
    monkeypatch.setattr(rooms, "STALE_AFTER_MS", 0)
