"""Send-to-device messaging (Client-Server API, "Send-to-Device messaging").

Messages reach the addressed devices in order of arrival through /sync's to_device
section; a later since-token acknowledges them, so a retried sync gets them again and
a client receives each one once per token; ``*`` addresses every device; deleting a
device deletes its inbox; a retried transaction sends nothing more.
"""

from __future__ import annotations

from itertools import count
from typing import Any

from tests.conftest import MatrixTestClient, Persona, second_device
from tests.sync.extension_helpers import sync

_txn = count()


def send_to_device(
    api: MatrixTestClient,
    who: Persona,
    messages: dict[str, Any],
    *,
    event_type: str = "m.test",
    txn_id: str | None = None,
    expect: int = 200,
) -> None:
    txn = txn_id if txn_id is not None else f"t{next(_txn)}"
    response = api.put(
        f"sendToDevice/{event_type}/{txn}", {"messages": messages}, token=who.access_token
    )
    assert response.status == expect, response.body


def to_device(body: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = body["to_device"]["events"]
    return events


def numbers(body: dict[str, Any]) -> list[int]:
    return [e["content"]["n"] for e in to_device(body)]


def test_messages_arrive_in_order_with_sender_and_type(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    for n in range(3):
        send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": n}}})

    body = sync(api, bob, since=token)

    assert numbers(body) == [0, 1, 2]
    assert to_device(body)[0] == {"sender": alice.user_id, "type": "m.test", "content": {"n": 0}}


def test_an_initial_sync_delivers_pending_messages(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 1}}})

    assert numbers(sync(api, bob)) == [1]


def test_a_retried_sync_gets_the_same_messages_and_the_next_token_none(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 1}}})

    first = sync(api, bob, since=token)
    retried = sync(api, bob, since=token)
    after = sync(api, bob, since=first["next_batch"])
    again = sync(api, bob, since=first["next_batch"])

    assert numbers(first) == numbers(retried) == [1]
    assert numbers(after) == numbers(again) == []


def test_acknowledged_messages_are_deleted(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    first = sync(api, bob, since=token)
    sync(api, bob, since=first["next_batch"])

    # The old token no longer finds them: the later one acknowledged their delivery.
    assert numbers(sync(api, bob, since=token)) == []


def test_a_message_sent_between_syncs_is_delivered_exactly_once(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    first = sync(api, bob, since=token)
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 2}}})
    second = sync(api, bob, since=first["next_batch"])
    third = sync(api, bob, since=second["next_batch"])

    assert (numbers(first), numbers(second), numbers(third)) == ([1], [2], [])


def test_a_long_queue_is_delivered_in_batches_without_gaps(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    for n in range(105):
        send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": n}}})

    first = sync(api, bob, since=token)
    second = sync(api, bob, since=first["next_batch"])
    third = sync(api, bob, since=second["next_batch"])

    assert numbers(first) == list(range(100))
    assert numbers(second) == list(range(100, 105))
    assert numbers(third) == []


def test_a_star_reaches_every_device_of_the_user(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    phone = second_device(api, bob)
    send_to_device(api, alice, {bob.user_id: {"*": {"n": 1}}})

    assert numbers(sync(api, bob)) == [1]
    assert numbers(sync(api, phone)) == [1]
    assert numbers(sync(api, alice)) == []


def test_a_message_for_one_device_reaches_only_that_device(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    phone = second_device(api, bob)
    send_to_device(api, alice, {bob.user_id: {phone.device_id: {"n": 1}}})

    assert numbers(sync(api, bob)) == []
    assert numbers(sync(api, phone)) == [1]


def test_a_named_device_wins_over_star(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    phone = second_device(api, bob)
    send_to_device(api, alice, {bob.user_id: {"*": {"n": 1}, phone.device_id: {"n": 2}}})

    assert numbers(sync(api, bob)) == [1]
    assert numbers(sync(api, phone)) == [2]


def test_unknown_devices_and_users_are_skipped(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    send_to_device(
        api,
        alice,
        {
            bob.user_id: {"NOSUCHDEVICE": {"n": 0}, bob.device_id: {"n": 1}},
            "@nobody:localhost:8008": {"*": {"n": 2}},
            # Federation does not carry to-device messages yet: remote users are skipped.
            "@carol:remote.example": {"*": {"n": 3}},
        },
    )

    assert numbers(sync(api, bob)) == [1]


def test_deleting_a_device_deletes_its_pending_messages(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    assert api.post("logout", token=bob.access_token).status == 200

    # Logging in again with the same device ID makes a new device with an empty inbox.
    response = api.login(bob.localpart, bob.password, device_id=bob.device_id)
    assert response.status == 200, response.body
    again = Persona(bob.localpart, bob.password, bob.user_id, response.body["access_token"], "")

    assert numbers(sync(api, again)) == []


def test_a_retried_transaction_sends_nothing_more(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    message = {bob.user_id: {bob.device_id: {"n": 1}}}
    send_to_device(api, alice, message, txn_id="same")
    send_to_device(api, alice, message, txn_id="same")
    # Another event type with the same transaction ID is another transaction.
    send_to_device(api, alice, message, txn_id="same", event_type="m.other")

    events = to_device(sync(api, bob))
    assert [e["type"] for e in events] == ["m.test", "m.other"]


def test_the_transaction_id_is_scoped_to_the_device(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    laptop = second_device(api, alice)
    message = {bob.user_id: {bob.device_id: {"n": 1}}}
    send_to_device(api, alice, message, txn_id="same")
    send_to_device(api, laptop, message, txn_id="same")

    assert numbers(sync(api, bob)) == [1, 1]


def test_a_long_poll_wakes_for_a_message(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    send_to_device(api, alice, {bob.user_id: {bob.device_id: {"n": 1}}})

    # News is there already: the long-poll answers at once.
    assert numbers(sync(api, bob, since=token, timeout=10_000)) == [1]


def test_bad_bodies_are_refused(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    def put(body: Any) -> str | None:
        return api.put("sendToDevice/m.test/bad", body, token=alice.access_token).errcode

    assert put({}) == "M_MISSING_PARAM"
    assert put({"messages": []}) == "M_BAD_JSON"
    assert put({"messages": {bob.user_id: []}}) == "M_BAD_JSON"
    assert put({"messages": {bob.user_id: {bob.device_id: "x"}}}) == "M_BAD_JSON"
    assert put({"messages": {"not-a-user": {"*": {}}}}) == "M_INVALID_PARAM"


def test_sending_needs_an_access_token(api: MatrixTestClient) -> None:
    response = api.put("sendToDevice/m.test/t", {"messages": {}})

    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")
