"""An incremental /sync with nothing new reads the database as little as it can: the
stream positions and the device's key counts in one statement (sync.providers'
read-alongs), besides the access token, which outside tests a session cache answers."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import MatrixTestClient, Persona
from tests.sync.helpers import sync


def test_an_empty_incremental_sync_is_one_query_besides_the_token(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = api.post("createRoom", {"preset": "public_chat"}, token=alice.access_token).body
    assert api.post(f"join/{room['room_id']}", token=bob.access_token).status == 200
    since = sync(api, alice)["next_batch"]
    since = sync(api, alice, since=since, timeout=0)["next_batch"]  # presence settles

    with CaptureQueriesContext(connection) as queries:
        body: dict[str, Any] = sync(api, alice, since=since, timeout=0)

    assert body["next_batch"] == since
    assert body["rooms"] == {}
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    sql = [query["sql"] for query in queries.captured_queries]
    # The token's session (SESSION_CACHE_S is 0 under tests), then one read for the rest.
    assert len(sql) == 2, sql
    assert "accounts_accesstoken" in sql[0]
    assert "streams_streamposition" in sql[1]
    assert "e2ee_onetimekey" in sql[1]
