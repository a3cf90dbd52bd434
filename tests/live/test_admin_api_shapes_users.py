"""The user admin API (/_synapse/admin/.../users...) answers in Synapse's shapes: the
same requests to a Trellis and a Synapse, the answers compared field by field."""

from __future__ import annotations

import pytest

from tests.live.admin_compare import (
    AdminPair,
    admin_pair,  # noqa: F401 (the fixture)
    assert_same_answer,
    assert_same_shape,
    shape,
)

pytestmark = pytest.mark.live


def test_shared_secret_registration_answers_alike(admin_pair: AdminPair) -> None:  # noqa: F811
    trellis, synapse = admin_pair.servers
    ours, theirs = trellis.fresh_user(), synapse.fresh_user()
    assert ours.user_id.endswith(trellis.server_name)
    assert theirs.user_id.endswith(synapse.server_name)
    assert_same_answer(admin_pair.both("GET", "/_matrix/client/v3/account/whoami", token="alice"))


def test_shape_compares_types_and_lists_by_items() -> None:
    assert shape({"a": [{"b": 1}, {"c": None}], "d": "x"}) == {
        "a": [{"b": "integer", "c": "null"}],
        "d": "string",
    }
    assert_same_shape({"a": [], "b": None}, {"a": [{"x": 1}], "b": "s"})
    with pytest.raises(AssertionError, match="b: Trellis integer, Synapse string"):
        assert_same_shape({"b": 1}, {"b": "s"})
    with pytest.raises(AssertionError, match="missing in Trellis"):
        assert_same_shape({}, {"b": "s"})
    assert_same_shape({"a": {"b": 1}}, {"a": {"c": 1}}, ignore=["a.b", "a.c"])
