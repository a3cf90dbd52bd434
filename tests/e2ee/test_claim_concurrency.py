"""Concurrent POST /keys/claim: no one-time key is ever handed out twice ("Servers must
ensure that each one-time key is returned at most once").

The claims commit for real (``transaction=True``) from threads, each with its own
client and database connection, all released at once. On PostgreSQL they run in
parallel (DELETE ... RETURNING with FOR UPDATE SKIP LOCKED); on SQLite one writer at a
time.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection

from e2ee.models import OneTimeKey
from tests.conftest import MatrixTestClient, Persona, Response
from tests.e2ee.helpers import Device, upload

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
CLAIMS_PER_THREAD = 6
KEYS = 30
OTK = "signed_curve25519"


def claim_in_threads(token: str, body: dict[str, Any]) -> list[Response]:
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def worker(index: int) -> None:
        client = MatrixTestClient()
        try:
            barrier.wait(timeout=30)
            results[index] = [
                client.post("keys/claim", body, token=token) for _ in range(CLAIMS_PER_THREAD)
            ]
        except BaseException as exc:  # re-raised in the test's thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a claim hung"
    responses: list[Response] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        responses.extend(result)
    return responses


def test_parallel_claims_never_hand_out_a_key_twice(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    keys = device.one_time_keys(KEYS)
    fallback = device.fallback_key()
    upload(
        api, device, device_keys=device.device_keys(), one_time_keys=keys, fallback_keys=fallback
    )
    body = {"one_time_keys": {alice.user_id: {alice.device_id: OTK}}}

    responses = claim_in_threads(bob.access_token, body)

    assert all(r.status == 200 for r in responses), [r.body for r in responses if r.status != 200]
    handed_out = [
        key_id
        for r in responses
        for key_id in r.body["one_time_keys"].get(alice.user_id, {}).get(alice.device_id, {})
    ]
    # Every claim got a key: all 30 one-time keys once each, then the fallback key.
    assert len(handed_out) == THREADS * CLAIMS_PER_THREAD
    counts = Counter(handed_out)
    (fallback_id,) = fallback
    assert {k for k in counts if k != fallback_id} == set(keys)
    assert all(counts[k] == 1 for k in keys)
    assert counts[fallback_id] == THREADS * CLAIMS_PER_THREAD - KEYS
    assert not OneTimeKey.objects.exists()


def test_parallel_claims_of_many_devices(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    devices = [Device(alice)]
    for _ in range(3):
        login = api.login(alice.localpart, alice.password)
        devices.append(
            Device(
                Persona(
                    alice.localpart,
                    alice.password,
                    alice.user_id,
                    login.body["access_token"],
                    login.body["device_id"],
                )
            )
        )
    uploaded: set[str] = set()
    for device in devices:
        keys = device.one_time_keys(10)
        uploaded |= {f"{device.device_id}/{k}" for k in keys}
        upload(api, device, device_keys=device.device_keys(), one_time_keys=keys)
    body = {"one_time_keys": {alice.user_id: {d.device_id: OTK for d in devices}}}

    responses = claim_in_threads(bob.access_token, body)

    handed_out = [
        f"{device_id}/{key_id}"
        for r in responses
        for device_id, by_key in r.body["one_time_keys"].get(alice.user_id, {}).items()
        for key_id in by_key
    ]
    assert len(handed_out) == len(set(handed_out)) == len(uploaded)
    assert set(handed_out) == uploaded
