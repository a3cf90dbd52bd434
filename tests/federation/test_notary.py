"""This server as a notary: GET /_matrix/key/v2/query/{serverName} and POST
/_matrix/key/v2/query answer other servers' keys, signed by them and by us."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.cache import cache

from accounts.clock import now_ms
from federation import keyring
from federation.keys import server_signing_key
from federation.models import RemoteServerKey
from protocol.server_keys import check_notary_signature, parse_server_keys, server_keys_json
from protocol.signing import generate_signing_key, verify_signed_json
from tests.conftest import MatrixTestClient
from tests.federation.helpers import CAROL, DAY_MS, FakeNetwork, FakeServer, json_response

QUERY = "/_matrix/key/v2/query"
KEYS = "/_matrix/key/v2/server"
DAVE = "dave.example:8448"


def query(api: MatrixTestClient, server_name: str, **params: Any) -> list[dict[str, Any]]:
    suffix = "&".join(f"{k}={v}" for k, v in params.items())
    response = api.get(f"{QUERY}/{quote(server_name)}" + (f"?{suffix}" if suffix else ""))
    assert response.status == 200, response.body
    answer: list[dict[str, Any]] = response.body["server_keys"]
    return answer


def batch(api: MatrixTestClient, server_keys: Any) -> list[dict[str, Any]]:
    response = api.post(QUERY, {"server_keys": server_keys})
    assert response.status == 200, response.body
    answer: list[dict[str, Any]] = response.body["server_keys"]
    return answer


def assert_countersigned(obj: dict[str, Any], server: FakeServer) -> None:
    """Signed by the server itself and by this server, as a keyring checks a notary."""
    keys = parse_server_keys(obj, server.server_name, now_ms())
    assert list(keys.verify_keys) == [server.signing_key.key_id]
    check_notary_signature(obj, settings.SERVER_NAME, server_signing_key().verify_key)


def test_our_own_keys_are_answered_directly(api: MatrixTestClient, network: FakeNetwork) -> None:
    answer = query(api, settings.SERVER_NAME)

    assert len(answer) == 1
    keys = parse_server_keys(answer[0], settings.SERVER_NAME, now_ms())
    assert list(keys.verify_keys) == [server_signing_key().key_id]
    assert network.sent == []


def test_another_servers_keys_are_fetched_and_countersigned(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    answer = query(api, CAROL)

    assert len(answer) == 1
    assert_countersigned(answer[0], carol)
    assert set(answer[0]["signatures"]) == {CAROL, settings.SERVER_NAME}
    # Kept, with the response as carol signed it, for the keyring and later queries.
    row = RemoteServerKey.objects.get(server_name=CAROL)
    assert row.key_json is not None
    assert row.key_json["signatures"] == {CAROL: answer[0]["signatures"][CAROL]}
    assert network.key_fetches(CAROL) == 1


def test_cached_keys_answer_later_queries(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    first = query(api, CAROL)
    second = query(api, CAROL)
    by_post = batch(api, {CAROL: {}})

    assert network.key_fetches(CAROL) == 1
    assert first == second == by_post


def test_keys_not_valid_long_enough_are_fetched_again(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    query(api, CAROL)
    # Carol's response is valid for a day; a query wants two.
    two_days = now_ms() + 2 * DAY_MS

    # Just fetched: not fetched again, whatever the query asks.
    query(api, CAROL, minimum_valid_until_ts=two_days)
    assert network.key_fetches(CAROL) == 1

    RemoteServerKey.objects.filter(server_name=CAROL).update(fetched_ts=now_ms() - 120_000)
    carol.signing_key = generate_signing_key("carol2")
    answer = query(api, CAROL, minimum_valid_until_ts=two_days)

    assert network.key_fetches(CAROL) == 2
    # Both responses are kept and answered: the old key's and the new one's.
    key_ids = sorted(key_id for obj in answer for key_id in obj["verify_keys"])
    assert key_ids == ["ed25519:carol1", "ed25519:carol2"]
    for obj in answer:
        check_notary_signature(obj, settings.SERVER_NAME, server_signing_key().verify_key)


def test_an_unknown_key_id_is_fetched(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    answer = batch(api, {CAROL: {"ed25519:carol1": {}}})
    assert_countersigned(answer[0], carol)

    RemoteServerKey.objects.filter(server_name=CAROL).update(fetched_ts=now_ms() - 120_000)
    # A key carol does not have: fetched again in case it is new, and nothing to answer.
    again = batch(api, {CAROL: {"ed25519:nope": {"minimum_valid_until_ts": None}}})

    assert network.key_fetches(CAROL) == 2
    assert again == []


def test_an_expired_key_is_fetched_again_at_each_query_and_answered_when_nothing_is_newer(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    """(sytest 50federation/01keys) A key that expired a day ago: each query wanting it
    valid later is a fetch, since carol may have published a newer response; the old one
    is still answered when she has nothing newer, or answers with an error."""
    expired = now_ms() - DAY_MS
    carol.routes[KEYS] = json_response(server_keys_json(CAROL, [carol.signing_key], expired))
    later = {CAROL: {"ed25519:carol1": {"minimum_valid_until_ts": expired + 1000}}}

    first = batch(api, {CAROL: {"ed25519:carol1": {}}})
    second = batch(api, later)
    carol.routes[KEYS] = json_response({"errcode": "M_UNKNOWN", "error": "Down"}, 400)
    third = batch(api, later)

    assert network.key_fetches(CAROL) == 3
    for answer in (first, second, third):
        assert [obj["valid_until_ts"] for obj in answer] == [expired]
        assert list(answer[0]["verify_keys"]) == ["ed25519:carol1"]
        check_notary_signature(answer[0], settings.SERVER_NAME, server_signing_key().verify_key)


def test_a_server_that_answered_with_an_error_is_asked_again_at_the_next_query(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    """Only a server that could not be reached is left alone for a minute: one that
    answered may have its keys by the next query."""
    carol.routes[KEYS] = json_response({"errcode": "M_UNKNOWN", "error": "Not yet"}, 400)
    assert batch(api, {CAROL: {"ed25519:carol1": {}}}) == []
    del carol.routes[KEYS]

    answer = batch(api, {CAROL: {"ed25519:carol1": {}}})

    assert network.key_fetches(CAROL) == 2
    assert_countersigned(answer[0], carol)


def test_a_key_the_server_no_longer_lists_is_still_answered(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    """(sytest 50federation/01keys) A response listing only a newer key does not make
    this server forget the old one."""
    expired = now_ms() - DAY_MS
    carol.routes[KEYS] = json_response(server_keys_json(CAROL, [carol.signing_key], expired))
    batch(api, {CAROL: {"ed25519:carol1": {}}})
    newer = generate_signing_key("carol2")
    carol.routes[KEYS] = json_response(server_keys_json(CAROL, [newer], expired + 1000))

    now = batch(api, {CAROL: {"ed25519:carol1": {"minimum_valid_until_ts": now_ms()}}})
    then = batch(api, {CAROL: {"ed25519:carol1": {"minimum_valid_until_ts": expired}}})

    assert network.key_fetches(CAROL) == 2
    assert [list(obj["verify_keys"]) for obj in now] == [["ed25519:carol1"]]
    assert then == now


def test_a_server_that_cannot_be_reached_is_left_out(
    api: MatrixTestClient, network: FakeNetwork
) -> None:
    network.add(DAVE, reachable=False)

    assert query(api, DAVE) == []
    assert query(api, "nowhere.example:8448") == []
    # The failure is remembered: the next query does not try again at once.
    assert query(api, DAVE) == []
    assert sum(1 for r in network.sent if r.target.host_header == DAVE) == 1


def test_cached_keys_of_a_server_gone_offline_are_still_answered(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    query(api, CAROL)
    carol.reachable = False
    # Expired, and last fetched long ago.
    RemoteServerKey.objects.filter(server_name=CAROL).update(
        valid_until_ts=now_ms() - 1, fetched_ts=now_ms() - DAY_MS
    )

    answer = query(api, CAROL)

    assert network.key_fetches(CAROL) == 2
    assert len(answer) == 1
    verify_signed_json(answer[0], CAROL, carol.signing_key.verify_key)
    check_notary_signature(answer[0], settings.SERVER_NAME, server_signing_key().verify_key)


def test_a_batch_answers_several_servers(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    dave = network.add(DAVE, signing_key=generate_signing_key("dave1"))

    answer = batch(
        api,
        {
            CAROL: {"ed25519:carol1": {"minimum_valid_until_ts": now_ms()}},
            DAVE: {},
            settings.SERVER_NAME: {},
            "offline.example:8448": {},
        },
    )

    by_server = {obj["server_name"]: obj for obj in answer}
    assert set(by_server) == {CAROL, DAVE, settings.SERVER_NAME}
    assert_countersigned(by_server[CAROL], carol)
    assert_countersigned(by_server[DAVE], dave)


def test_an_empty_batch_answers_nothing(api: MatrixTestClient, network: FakeNetwork) -> None:
    assert batch(api, {}) == []


def test_a_keyring_using_us_as_its_notary_accepts_our_answer(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork, settings: Any
) -> None:
    """What a server that trusts us as its notary does with our answer (our own keyring's
    notary path, replayed against what this server served), carol unreachable for it."""
    answer = api.get(f"{QUERY}/{CAROL}").body
    carol.reachable = False
    us = network.add(settings.SERVER_NAME)
    us.routes[f"{QUERY}/{quote(CAROL, safe='')}"] = json_response(answer)
    settings.FEDERATION_KEY_NOTARIES = [settings.SERVER_NAME]
    RemoteServerKey.objects.all().delete()
    cache.clear()

    keyring.refresh_server_keys(CAROL)

    row = RemoteServerKey.objects.get(server_name=CAROL)
    assert (row.key_id, row.fetched_from) == ("ed25519:carol1", settings.SERVER_NAME)


@pytest.mark.parametrize(
    "path",
    [
        f"{QUERY}/not%20a%20server",
        f"{QUERY}/{CAROL}?minimum_valid_until_ts=soon",
        f"{QUERY}/{CAROL}?minimum_valid_until_ts=-5",
        f"{QUERY}/{CAROL}?minimum_valid_until_ts=1_000",
        f"{QUERY}/{CAROL}?minimum_valid_until_ts=" + "9" * 5000,
    ],
)
def test_bad_queries_are_invalid_params(
    api: MatrixTestClient, network: FakeNetwork, path: str
) -> None:
    response = api.get(path)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), response.body
    assert network.sent == []


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_BAD_JSON"),
        ({"server_keys": []}, "M_BAD_JSON"),
        ({"server_keys": {CAROL: []}}, "M_BAD_JSON"),
        ({"server_keys": {CAROL: {"ed25519:a": 5}}}, "M_BAD_JSON"),
        ({"server_keys": {CAROL: {"ed25519:a": {"minimum_valid_until_ts": "1"}}}}, "M_BAD_JSON"),
        ({"server_keys": {CAROL: {"ed25519:a": {"minimum_valid_until_ts": True}}}}, "M_BAD_JSON"),
        ({"server_keys": {"bad server": {}}}, "M_INVALID_PARAM"),
        ({"server_keys": {f"s{i}.example": {} for i in range(101)}}, "M_INVALID_PARAM"),
    ],
)
def test_bad_batches_are_refused(
    api: MatrixTestClient, network: FakeNetwork, body: Any, errcode: str
) -> None:
    response = api.post(QUERY, body)

    assert (response.status, response.errcode) == (400, errcode), response.body
    assert network.sent == []


def test_a_body_that_is_not_json_is_refused(api: MatrixTestClient) -> None:
    response = api.client.post(QUERY, data=b"{", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errcode"] == "M_NOT_JSON"


def test_the_old_form_with_a_key_id_is_answered(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    response = api.get(f"{QUERY}/{CAROL}/ed25519:carol1")

    assert response.status == 200
    assert_countersigned(response.body["server_keys"][0], carol)


def test_other_methods_are_unrecognized(api: MatrixTestClient) -> None:
    assert api.post(f"{QUERY}/{CAROL}", {}).errcode == "M_UNRECOGNIZED"
    assert api.get(QUERY).errcode == "M_UNRECOGNIZED"
