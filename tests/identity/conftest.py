from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase

from tests.conftest import MatrixTestClient, Response
from tests.federation.helpers import network

__all__ = ["network"]


class CommittingClient(MatrixTestClient):
    """A test client after each of whose requests what the server queued for after commit
    runs (the mail, the SMS and the onbind deliveries, as eager Celery tasks), as it would
    once the request's transaction committed; the test's own transaction never does."""

    def request(self, *args: Any, **kwargs: Any) -> Response:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(*args, **kwargs)


@pytest.fixture
def api(db: None) -> MatrixTestClient:
    return CommittingClient()
