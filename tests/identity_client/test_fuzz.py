"""Hostile input to the endpoints identity servers and other servers call: whatever the
body, /3pid/onbind and /exchange_third_party_invite answer with a Matrix answer, never a
500, and nobody is invited."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooms.models import Membership
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import FakeNetwork, network
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import fed

__all__ = ["network"]

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
text = st.text(max_size=30)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
)
invite_keys = st.sampled_from(["medium", "address", "mxid", "room_id", "sender", "signed"])
invites = st.lists(st.dictionaries(invite_keys, values | st.just("!r:example.org")), max_size=3)


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "medium": values,
            "address": values,
            "mxid": values,
            "invites": invites | values,
        },
    )
)
def test_onbind_never_fails_with_a_500(api: MatrixTestClient, alice: Persona, body: Any) -> None:
    response = api.put("/_matrix/federation/v1/3pid/onbind", body)

    assert response.status != 500, response.body
    assert response.status == 200 or response.errcode is not None
    assert not Membership.objects.filter(membership="invite").exists()


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["type", "room_id", "sender", "state_key", "content"]), values
    )
)
def test_exchange_never_fails_with_a_500(
    api: MatrixTestClient, network: FakeNetwork, alice: Persona, body: Any
) -> None:
    dave = RemoteServer("dave.test:8448")
    network.add(dave.server_name, signing_key=dave.signing_key)

    response = fed(
        api, dave, "PUT", "/_matrix/federation/v1/exchange_third_party_invite/!r:example.org", body
    )

    assert response.status != 500, response.body
    assert response.status == 200 or response.body.get("errcode")
    assert not Membership.objects.filter(membership="invite").exists()
