"""Stored filters are read once and kept: each reader gets its own copy."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import selectors
from accounts.models import User
from tests.conftest import MatrixTestClient, Persona


def test_a_stored_filter_is_read_from_the_database_once(
    api: MatrixTestClient, alice: Persona
) -> None:
    created = api.post(
        f"/_matrix/client/v3/user/{alice.user_id}/filter",
        {"room": {"timeline": {"limit": 7}}},
        token=alice.access_token,
    )
    assert created.status == 200, created.body
    user = User.objects.get(localpart="alice")
    filter_id = created.body["filter_id"]

    with CaptureQueriesContext(connection) as first:
        one = selectors.get_filter(user, filter_id)
    with CaptureQueriesContext(connection) as second:
        two = selectors.get_filter(user, filter_id)

    assert one == two == {"room": {"timeline": {"limit": 7}}}
    assert len(first.captured_queries) == 1
    assert len(second.captured_queries) == 0
    # Copies: a caller changing its filter changes nobody else's.
    one["room"]["timeline"]["limit"] = 1
    assert selectors.get_filter(user, filter_id)["room"]["timeline"]["limit"] == 7


def test_an_unknown_filter_is_not_remembered_as_missing(
    api: MatrixTestClient, alice: Persona
) -> None:
    user = User.objects.get(localpart="alice")
    missing = api.get(
        f"/_matrix/client/v3/user/{alice.user_id}/filter/0", token=alice.access_token
    )
    assert missing.status == 404
    created = api.post(
        f"/_matrix/client/v3/user/{alice.user_id}/filter",
        {"presence": {"types": []}},
        token=alice.access_token,
    )
    assert selectors.get_filter(user, created.body["filter_id"]) == {"presence": {"types": []}}
