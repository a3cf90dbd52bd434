"""Hostile input to the endpoints served to other servers by fed-misc: the notary
(/_matrix/key/v2/query), /_matrix/federation/v1/publicRooms and /hierarchy. Whatever
the query string, path or body, the answer is a Matrix answer, never a 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings as django_settings
from django.utils.encoding import escape_uri_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.x_matrix import format_authorization, sign_request
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import FakeNetwork
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import create_room

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
# What a server can sign (canonical JSON: no floats, integers within 2**53).
canonical_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
query_params = st.dictionaries(
    st.sampled_from(
        [
            "limit",
            "since",
            "include_all_networks",
            "third_party_instance_id",
            "suggested_only",
            "minimum_valid_until_ts",
            "server",
        ]
    ),
    text,
    max_size=4,
)
# Shapes near the notary's body, so that the checks past the first are reached too.
key_query_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "server_keys": st.one_of(
                json_values,
                st.dictionaries(
                    st.one_of(text, st.just("carol.example:8448")),
                    st.one_of(
                        json_values,
                        st.dictionaries(
                            text,
                            st.one_of(
                                json_values,
                                st.fixed_dictionaries({"minimum_valid_until_ts": json_values}),
                            ),
                            max_size=3,
                        ),
                    ),
                    max_size=3,
                ),
            )
        }
    ),
)
public_rooms_bodies = st.one_of(
    canonical_values,
    st.fixed_dictionaries(
        {},
        optional={
            "limit": canonical_values,
            "since": canonical_values,
            "filter": st.one_of(
                canonical_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "generic_search_term": canonical_values,
                        "room_types": canonical_values,
                    },
                ),
            ),
            "include_all_networks": canonical_values,
            "third_party_instance_id": canonical_values,
        },
    ),
)


@pytest.fixture
def dave(db: None) -> RemoteServer:
    server = RemoteServer("dave.test")
    server.install_keys()
    return server


def assert_matrix_answer(status: int, body: Any) -> None:
    assert status < 500, body
    if status != 200:
        assert isinstance(body, dict)
        assert isinstance(body.get("errcode"), str), body


@FUZZ
@given(server_name=text, params=query_params, key_id=st.none() | text)
def test_notary_get(
    api: MatrixTestClient,
    network: FakeNetwork,
    server_name: str,
    params: dict[str, str],
    key_id: str | None,
) -> None:
    path = f"/_matrix/key/v2/query/{quote(server_name or 'x', safe='')}"
    if key_id:
        path += "/" + quote(key_id, safe="")
    response = api.get(path + "?" + urlencode(params))
    assert_matrix_answer(response.status, response.body)


@FUZZ
@given(body=key_query_bodies)
def test_notary_post(api: MatrixTestClient, network: FakeNetwork, body: Any) -> None:
    response = api.post("/_matrix/key/v2/query", body)
    assert_matrix_answer(response.status, response.body)


@FUZZ
@given(params=query_params, body=public_rooms_bodies)
def test_public_rooms(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, params: dict[str, str], body: Any
) -> None:
    query = urlencode(params)
    got = fed(api, dave, "GET", f"{F}/publicRooms" + (f"?{query}" if query else ""))
    assert_matrix_answer(got.status, got.body)
    assert got.status != 401, got.body
    posted = fed(api, dave, "POST", f"{F}/publicRooms", body)
    assert_matrix_answer(posted.status, posted.body)
    assert posted.status != 401 or body is None, posted.body


@FUZZ
@given(room_id=text, params=query_params)
def test_hierarchy(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, room_id: str, params: dict[str, str]
) -> None:
    for target in (room_id or "x", f"!{room_id}:localhost"):
        # Encoded as Django re-encodes it (what the signature is checked against here).
        query = urlencode(params)
        path = escape_uri_path(f"{F}/hierarchy/{target}") + (f"?{query}" if query else "")
        got = fed(api, dave, "GET", path)
        assert_matrix_answer(got.status, got.body)
        assert got.status != 401, got.body


def test_hierarchy_of_a_real_space_with_fuzzed_flags(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    space = create_room(api, alice, preset="public_chat", creation_content={"type": "m.space"})
    for flag in ["true", "false", "TRUE", "1", "", "\u00e9", "true&suggested_only=false"]:
        got = fed(api, dave, "GET", f"{F}/hierarchy/{space}?suggested_only={quote(flag)}")
        assert_matrix_answer(got.status, got.body)
        assert got.status in (200, 400), (flag, got.body)


def test_bodies_that_are_not_json_objects(api: MatrixTestClient, dave: RemoteServer) -> None:
    for raw in [b"", b"[]", b"null", b"{", b'{"limit": 1e999}', json.dumps("x").encode()]:
        response = api.client.post(
            "/_matrix/key/v2/query", data=raw, content_type="application/json"
        )
        assert 400 <= response.status_code < 500, raw


def test_a_signed_body_with_floats_is_unauthorized(
    api: MatrixTestClient, dave: RemoteServer
) -> None:
    """Floats cannot be canonicalised, so no signature can cover them."""
    path = f"{F}/publicRooms"
    header = fed_authorization(dave, "POST", path, {"limit": 1})
    response = api.client.post(
        path,
        data=b'{"limit": 1.5}',
        content_type="application/json",
        headers={"Authorization": header},
    )
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_UNAUTHORIZED"


def fed_authorization(server: RemoteServer, method: str, path: str, body: Any) -> str:
    auth = sign_request(
        server.signing_key, method, path, server.server_name, django_settings.SERVER_NAME, body
    )
    return format_authorization(auth)
