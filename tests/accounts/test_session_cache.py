"""The per-process session cache (accounts/session_cache.py): repeated requests with one
token read it once; logout, device deletion and deactivation end it at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AccessToken
from tests.accounts.helpers import with_password_uia
from tests.conftest import MatrixTestClient, Persona, second_device

WHOAMI = "/_matrix/client/v3/account/whoami"


@pytest.fixture(autouse=True)
def _cache_on(settings: Any) -> None:
    from accounts import session_cache

    session_cache.sessions.clear()
    settings.SESSION_CACHE_S = 60.0


def _token_reads(queries: list[dict[str, Any]]) -> int:
    table = AccessToken._meta.db_table
    return sum(1 for q in queries if q["sql"].startswith("SELECT") and f'"{table}"' in q["sql"])


def test_a_second_request_with_the_same_token_does_not_read_the_session_again(
    api: MatrixTestClient, alice: Persona
) -> None:
    with CaptureQueriesContext(connection) as first:
        assert api.get(WHOAMI, token=alice.access_token).status == 200
    with CaptureQueriesContext(connection) as second:
        answer = api.get(WHOAMI, token=alice.access_token)
    assert answer.status == 200
    assert answer.body == {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "is_guest": False,
    }
    assert _token_reads(first.captured_queries) == 1
    assert _token_reads(second.captured_queries) == 0


def test_logout_ends_a_cached_session_at_once(api: MatrixTestClient, alice: Persona) -> None:
    assert api.get(WHOAMI, token=alice.access_token).status == 200
    assert api.post("/_matrix/client/v3/logout", token=alice.access_token).status == 200
    answer = api.get(WHOAMI, token=alice.access_token)
    assert answer.status == 401
    assert answer.body["errcode"] == "M_UNKNOWN_TOKEN"


def test_deactivation_ends_a_cached_session_at_once(api: MatrixTestClient, alice: Persona) -> None:
    other = second_device(api, alice)
    assert api.get(WHOAMI, token=other.access_token).status == 200
    deactivated = with_password_uia(api, "POST", "account/deactivate", alice, {})
    assert deactivated.status == 200, deactivated.body
    assert api.get(WHOAMI, token=other.access_token).status == 401


def test_deleting_a_device_ends_its_cached_session_at_once(
    api: MatrixTestClient, alice: Persona
) -> None:
    other = second_device(api, alice)
    assert api.get(WHOAMI, token=other.access_token).status == 200
    deleted = with_password_uia(
        api, "POST", "delete_devices", alice, {"devices": [other.device_id]}
    )
    assert deleted.status == 200, deleted.body
    assert api.get(WHOAMI, token=other.access_token).status == 401
    assert api.get(WHOAMI, token=alice.access_token).status == 200


def test_an_expired_token_is_refused_even_when_cached(
    api: MatrixTestClient, alice: Persona
) -> None:
    assert api.get(WHOAMI, token=alice.access_token).status == 200
    # Behind the cache's back (no signal): the cached copy must still be checked.
    AccessToken.objects.filter(user__localpart="alice").update(expires_at_ms=1)
    from accounts import session_cache

    digest = next(iter(session_cache.sessions.entries))
    entry = session_cache.sessions.entries[digest]
    names, values = entry[2]
    values = tuple(1 if n == "expires_at_ms" else v for n, v in zip(names, values, strict=True))
    session_cache.sessions.entries[digest] = (*entry[:2], (names, values), *entry[3:])
    answer = api.get(WHOAMI, token=alice.access_token)
    assert answer.status == 401
    assert answer.body["soft_logout"] is True
