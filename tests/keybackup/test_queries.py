"""An upload costs the same few queries however many keys it carries (up to a batch:
500 sessions per lookup, and as many rows per write as the backend takes in one
statement, about 140 on SQLite), and a read is one query for the keys."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import MatrixTestClient, Persona
from tests.keybackup.helpers import create_version, key, keys_path


def queries(api: MatrixTestClient, alice: Persona, method: str, path: str, body: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = api.request(method, path, body, token=alice.access_token)
    assert response.status == 200, response.body
    return len(captured)


def rooms(count: int, sessions: int, index: int = 5) -> dict[str, Any]:
    return {
        "rooms": {
            f"!r{r}:localhost:8008": {"sessions": {f"s{s}": key(index) for s in range(sessions)}}
            for r in range(count)
        }
    }


def test_upload_queries_do_not_grow_with_the_keys(api: MatrixTestClient, alice: Persona) -> None:
    small = create_version(api, alice)
    small_new = queries(api, alice, "PUT", keys_path(small), rooms(1, 1))
    small_better = queries(api, alice, "PUT", keys_path(small), rooms(1, 1, index=1))
    big = create_version(api, alice)

    big_new = queries(api, alice, "PUT", keys_path(big), rooms(10, 10))
    big_better = queries(api, alice, "PUT", keys_path(big), rooms(10, 10, index=1))
    big_same = queries(api, alice, "PUT", keys_path(big), rooms(10, 10, index=1))
    big_read = queries(api, alice, "GET", keys_path(big), None)
    small_read = queries(api, alice, "GET", keys_path(small), None)

    assert big_new == small_new
    assert big_better == small_better
    # Nothing better: no write, no etag bump.
    assert big_same < big_better
    assert big_read == small_read
