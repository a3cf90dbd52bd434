"""Fixtures: a running identity server double the homeserver trusts and may reach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.keys import server_signing_key
from tests.conftest import MatrixTestClient, Persona
from tests.identity_client.double import IdentityServerDouble, running


@pytest.fixture
def identity_server(tmp_path: Path, settings: Any) -> Iterator[IdentityServerDouble]:
    double = IdentityServerDouble(homeserver_key=server_signing_key().verify_key)
    with running(double, tmp_path) as started:
        # The double listens on loopback with a test authority's certificate: the
        # operator's settings that let Trellis reach and trust it (as sytest needs).
        settings.FEDERATION_IP_ALLOWLIST = ["127.0.0.0/8"]
        settings.FEDERATION_CA_FILE = started.ca_file
        yield started


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")
