"""Fixtures for the push tests: carol, next to alice and bob."""

from __future__ import annotations

import pytest

from tests.conftest import MatrixTestClient, Persona


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")
