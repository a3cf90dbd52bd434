"""Using access tokens (Client-Server API, "Using access tokens", "Soft logout").

Also pins the number of queries an authenticated request costs.
"""

from __future__ import annotations

from typing import Any

from accounts.models import AccessToken, Device
from tests.accounts.helpers import database_dump, whoami
from tests.conftest import MatrixTestClient, Persona


def test_a_missing_token_is_401_missing_token(api: MatrixTestClient) -> None:
    response = api.get("account/whoami")

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


def test_an_unknown_token_is_401_unknown_token_and_not_a_soft_logout(
    api: MatrixTestClient,
) -> None:
    response = whoami(api, "mat_never_issued")

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"
    assert response.body["soft_logout"] is False


def test_a_non_bearer_authorization_header_is_refused(
    api: MatrixTestClient, alice: Persona
) -> None:
    response = api.client.get(
        "/_matrix/client/v3/account/whoami", headers={"Authorization": "Basic abc"}
    )

    assert response.status_code == 401
    assert response.json()["errcode"] == "M_MISSING_TOKEN"


def test_the_token_may_come_as_a_query_parameter(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(f"account/whoami?access_token={alice.access_token}")

    assert response.status == 200
    assert response.body["user_id"] == alice.user_id


def test_an_unknown_token_in_the_query_is_refused(api: MatrixTestClient) -> None:
    response = api.get("account/whoami?access_token=mat_nope")

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"


def test_whoami_says_who_and_which_device(api: MatrixTestClient, alice: Persona) -> None:
    response = whoami(api, alice.access_token)

    assert response.status == 200
    assert response.body == {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "is_guest": False,
    }


def test_an_expired_token_is_a_soft_logout(api: MatrixTestClient, alice: Persona) -> None:
    AccessToken.objects.filter(user__localpart="alice").update(expires_at_ms=1)

    response = whoami(api, alice.access_token)

    assert response.status == 401
    assert response.errcode == "M_UNKNOWN_TOKEN"
    assert response.body["soft_logout"] is True


def test_a_soft_logged_out_device_can_log_in_again_with_its_device_id(
    api: MatrixTestClient, alice: Persona
) -> None:
    AccessToken.objects.filter(user__localpart="alice").update(expires_at_ms=1)

    again = api.login("alice", alice.password, device_id=alice.device_id)

    assert again.status == 200
    assert whoami(api, again.body["access_token"]).body["device_id"] == alice.device_id


def test_tokens_are_stored_only_as_digests(api: MatrixTestClient, alice: Persona) -> None:
    refreshing = api.login("alice", alice.password, refresh_token=True).body
    raw = [alice.access_token, refreshing["access_token"], refreshing["refresh_token"]]
    refreshed = api.post("refresh", {"refresh_token": refreshing["refresh_token"]}).body
    raw += [refreshed["access_token"], refreshed["refresh_token"]]

    dump = database_dump()

    assert alice.user_id.split(":")[0][1:] in dump  # the dump does see the data
    for token in raw:
        assert token not in dump
        # Not even the random part without its prefix.
        assert token[4:] not in dump


def test_using_a_token_records_when_and_where_the_device_was_seen(
    api: MatrixTestClient, alice: Persona
) -> None:
    Device.objects.filter(device_id=alice.device_id).update(last_seen_ts=1, last_seen_ip=None)

    whoami(api, alice.access_token)

    device = api.get(f"devices/{alice.device_id}", token=alice.access_token).body
    assert device["last_seen_ts"] > 1
    assert device["last_seen_ip"] == "127.0.0.1"


def test_an_authenticated_request_costs_one_query(
    api: MatrixTestClient, alice: Persona, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(1):
        response = whoami(api, alice.access_token)

    assert response.status == 200


def test_a_device_not_seen_for_a_while_costs_one_more_query(
    api: MatrixTestClient, alice: Persona, django_assert_max_num_queries: Any
) -> None:
    Device.objects.filter(device_id=alice.device_id).update(last_seen_ts=1)

    with django_assert_max_num_queries(2):
        response = whoami(api, alice.access_token)

    assert response.status == 200


def test_a_bad_token_costs_one_query(
    api: MatrixTestClient, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(1):
        response = whoami(api, "mat_never_issued")

    assert response.status == 401


def test_a_refreshed_token_costs_one_more_query_only_on_first_use(
    api: MatrixTestClient, alice: Persona, django_assert_max_num_queries: Any
) -> None:
    refreshing = api.login("alice", alice.password, refresh_token=True).body
    token = api.post("refresh", {"refresh_token": refreshing["refresh_token"]}).body[
        "access_token"
    ]

    with django_assert_max_num_queries(2):
        assert whoami(api, token).status == 200
    with django_assert_max_num_queries(1):
        assert whoami(api, token).status == 200
