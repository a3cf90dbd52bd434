"""To-device messages between servers (Server-Server API, "Send-to-device messaging":
the m.direct_to_device EDU).

Alice and Bob are local; Carol is a user of carol.example:8448 and Dave of
dave.example:8448. Alice's messages for Carol and Dave are queued as one EDU per server
(split when large), with the request, once; what Carol's server sends reaches Alice's
and Bob's /sync once, however often it is sent, and only when its sender is Carol's
server's own user.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2ee.models import FederatedToDeviceMessage, ToDeviceMessage
from e2ee.services import to_device as service
from federation.models import OutboundEDU
from protocol.canonical_json import encode_canonical_json
from tests.conftest import MatrixTestClient, Persona, second_device
from tests.federation.helpers import CAROL, network
from tests.federation.inbox import DAVE, Inbox, inbox
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.sync.extension_helpers import sync
from tests.sync.test_to_device import send_to_device, to_device

__all__ = ["inbox", "network"]

CAROL_USER = f"@carol:{CAROL}"
DAVE_USER = f"@dave:{DAVE}"


@pytest.fixture
def carol_server(db: None) -> RemoteServer:
    server = RemoteServer(CAROL)
    server.install_keys()
    return server


def queued(server: str) -> list[dict[str, Any]]:
    rows = OutboundEDU.objects.filter(
        destination__server_name=server, edu_type="m.direct_to_device"
    )
    return list(rows.order_by("id").values_list("content", flat=True))


def put_transaction(
    api: MatrixTestClient, server: RemoteServer, txn_id: str, *edus: dict[str, Any]
) -> None:
    body = {"origin": server.server_name, "origin_server_ts": 1, "pdus": [], "edus": list(edus)}
    got = fed(api, server, "PUT", f"{F}/send/{txn_id}", body)
    assert got.status == 200, got.body
    assert got.body == {"pdus": {}}


def edu(sender: str, messages: dict[str, Any], message_id: str = "m1") -> dict[str, Any]:
    content = {"sender": sender, "type": "m.test", "message_id": message_id, "messages": messages}
    return {"edu_type": "m.direct_to_device", "content": content}


# --- Outbound ----------------------------------------------------------------------------


def test_messages_for_remote_users_are_queued_one_edu_per_server(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]

    send_to_device(
        api,
        alice,
        {
            bob.user_id: {bob.device_id: {"n": 0}},
            CAROL_USER: {"PHONE": {"n": 1}, "*": {"n": 2}},
            f"@erin:{CAROL}": {"LAPTOP": {"n": 3}},
            DAVE_USER: {"*": {"n": 4}},
        },
        txn_id="t1",
    )

    [for_carol] = queued(CAROL)
    assert for_carol["sender"] == alice.user_id
    assert for_carol["type"] == "m.test"
    assert for_carol["messages"] == {
        CAROL_USER: {"PHONE": {"n": 1}, "*": {"n": 2}},
        f"@erin:{CAROL}": {"LAPTOP": {"n": 3}},
    }
    [for_dave] = queued(DAVE)
    assert for_dave["messages"] == {DAVE_USER: {"*": {"n": 4}}}
    assert for_carol["message_id"] != for_dave["message_id"]
    # The local recipient gets its message as before.
    assert [e["content"] for e in to_device(sync(api, bob, since=token))] == [{"n": 0}]

    # A retried request queues nothing more.
    send_to_device(api, alice, {CAROL_USER: {"PHONE": {"n": 1}}}, txn_id="t1")
    assert len(queued(CAROL)) == 1


def test_queued_messages_reach_the_remote_server_in_a_transaction(
    api: MatrixTestClient,
    alice: Persona,
    inbox: Inbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        send_to_device(api, alice, {CAROL_USER: {"PHONE": {"n": 1}}})

    [(destination, _, body)] = inbox.requests
    assert destination == CAROL
    [sent] = body["edus"]
    assert sent["edu_type"] == "m.direct_to_device"
    assert sent["content"]["messages"] == {CAROL_USER: {"PHONE": {"n": 1}}}
    assert not OutboundEDU.objects.exists()


def test_a_server_that_is_down_gets_the_messages_when_it_is_back(
    api: MatrixTestClient,
    alice: Persona,
    inbox: Inbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from federation import outbound
    from federation.models import Destination

    inbox.status[CAROL] = 503
    with django_capture_on_commit_callbacks(execute=True):
        send_to_device(api, alice, {CAROL_USER: {"PHONE": {"n": 1}}})
    assert len(queued(CAROL)) == 1

    inbox.status[CAROL] = 200
    Destination.objects.filter(server_name=CAROL).update(retry_at_ts=None)
    assert outbound.send_pending(CAROL).sent == 1

    sent = [body["edus"] for destination, _, body in inbox.requests if destination == CAROL]
    # The same transaction twice: once refused, once taken.
    assert sent[0] == sent[1]
    assert sent[1][0]["content"]["messages"] == {CAROL_USER: {"PHONE": {"n": 1}}}
    assert not OutboundEDU.objects.exists()


def test_large_batches_are_split_so_each_edu_stays_within_the_limit(
    api: MatrixTestClient, alice: Persona
) -> None:
    blob = "x" * (service.MAX_EDU_BYTES // 3)
    messages = {f"@u{n}:{CAROL}": {"D": {"blob": blob}} for n in range(4)}
    # One user with more than fits one EDU: their devices are split apart.
    messages[CAROL_USER] = {f"D{n}": {"blob": blob} for n in range(4)}

    send_to_device(api, alice, messages)

    edus = queued(CAROL)
    assert len(edus) >= 4
    for content in edus:
        size = len(encode_canonical_json({"edu_type": "m.direct_to_device", "content": content}))
        assert size <= service.MAX_EDU_BYTES
    assert len({content["message_id"] for content in edus}) == len(edus)
    delivered: dict[str, dict[str, Any]] = {}
    for content in edus:
        for user_id, by_device in content["messages"].items():
            assert not set(by_device) & set(delivered.get(user_id, {}))
            delivered.setdefault(user_id, {}).update(by_device)
    assert delivered == messages


def test_a_message_too_large_for_an_edu_is_refused_and_nothing_is_sent(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    token = sync(api, bob)["next_batch"]
    messages = {
        bob.user_id: {bob.device_id: {"n": 0}},
        CAROL_USER: {"PHONE": {"blob": "x" * service.MAX_EDU_BYTES}},
    }

    response = api.put("sendToDevice/m.test/big", {"messages": messages}, token=alice.access_token)

    assert (response.status, response.errcode) == (413, "M_TOO_LARGE")
    assert not OutboundEDU.objects.exists()
    assert to_device(sync(api, bob, since=token)) == []
    # The refused request was not recorded: a smaller one under the same ID goes.
    send_to_device(api, alice, {CAROL_USER: {"PHONE": {"n": 1}}}, txn_id="big")
    assert len(queued(CAROL)) == 1


def test_a_message_that_is_not_canonical_json_is_refused_for_remote_users(
    api: MatrixTestClient, alice: Persona
) -> None:
    messages = {CAROL_USER: {"PHONE": {"ratio": 0.5}}}

    response = api.put("sendToDevice/m.test/f", {"messages": messages}, token=alice.access_token)

    assert (response.status, response.errcode) == (400, "M_BAD_JSON")
    assert not OutboundEDU.objects.exists()


# --- Inbound -----------------------------------------------------------------------------


def test_a_remote_message_reaches_the_addressed_devices(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol_server: RemoteServer
) -> None:
    alice_phone = second_device(api, alice)
    tokens = {p.access_token: sync(api, p)["next_batch"] for p in (alice, alice_phone, bob)}

    put_transaction(
        api,
        carol_server,
        "t1",
        edu(
            CAROL_USER,
            {
                alice.user_id: {alice_phone.device_id: {"n": 1}},
                bob.user_id: {"*": {"n": 2}},
                # Not ours to deliver, nor to pass on.
                DAVE_USER: {"*": {"n": 3}},
                f"@nobody:{alice.user_id.split(':', 1)[1]}": {"*": {"n": 4}},
            },
        ),
    )

    def received(who: Persona) -> list[dict[str, Any]]:
        return to_device(sync(api, who, since=tokens[who.access_token]))

    assert received(alice) == []
    assert received(alice_phone) == [{"sender": CAROL_USER, "type": "m.test", "content": {"n": 1}}]
    assert received(bob) == [{"sender": CAROL_USER, "type": "m.test", "content": {"n": 2}}]
    assert not OutboundEDU.objects.exists()


def test_a_message_id_is_delivered_once(
    api: MatrixTestClient, alice: Persona, carol_server: RemoteServer
) -> None:
    token = sync(api, alice)["next_batch"]
    message = edu(CAROL_USER, {alice.user_id: {alice.device_id: {"n": 1}}}, message_id="once")

    put_transaction(api, carol_server, "t1", message)
    # The same transaction again (its answer lost), and the same EDU in a new one.
    put_transaction(api, carol_server, "t1", message)
    put_transaction(api, carol_server, "t2", message, message)

    assert [e["content"] for e in to_device(sync(api, alice, since=token))] == [{"n": 1}]
    assert ToDeviceMessage.objects.count() == 1
    # Another server may use the same message ID for its own messages.
    dave_server = RemoteServer(DAVE)
    dave_server.install_keys()
    put_transaction(
        api,
        dave_server,
        "t1",
        edu(DAVE_USER, {alice.user_id: {alice.device_id: {"n": 2}}}, message_id="once"),
    )
    assert ToDeviceMessage.objects.filter(sender=DAVE_USER).count() == 1


def test_a_message_claiming_another_servers_sender_is_ignored(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol_server: RemoteServer
) -> None:
    token = sync(api, alice)["next_batch"]

    put_transaction(
        api,
        carol_server,
        "t1",
        # Carol's server speaking for Dave, and for Bob (a local user).
        edu(DAVE_USER, {alice.user_id: {"*": {"forged": 1}}}, message_id="a"),
        edu(bob.user_id, {alice.user_id: {"*": {"forged": 2}}}, message_id="b"),
        edu("not a user", {alice.user_id: {"*": {"forged": 3}}}, message_id="c"),
    )

    assert to_device(sync(api, alice, since=token)) == []
    assert not ToDeviceMessage.objects.exists()
    assert not FederatedToDeviceMessage.objects.exists()


def test_malformed_edus_are_ignored_and_do_not_stop_the_others(
    api: MatrixTestClient, alice: Persona, carol_server: RemoteServer
) -> None:
    token = sync(api, alice)["next_batch"]
    good = edu(CAROL_USER, {alice.user_id: {alice.device_id: {"n": 1}}}, message_id="good")

    def with_content(**changes: Any) -> dict[str, Any]:
        return {"edu_type": "m.direct_to_device", "content": {**good["content"], **changes}}

    put_transaction(
        api,
        carol_server,
        "t1",
        with_content(message_id=None),
        with_content(message_id="x" * 256),
        with_content(type=""),
        with_content(messages=[]),
        with_content(message_id="d1", messages={alice.user_id: "not an object"}),
        with_content(message_id="d2", messages={alice.user_id: {alice.device_id: "text"}}),
        with_content(message_id="d3", messages={"not a user": {"*": {}}}),
        good,
    )

    assert [e["content"] for e in to_device(sync(api, alice, since=token))] == [{"n": 1}]


def test_old_message_ids_are_purged(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    FederatedToDeviceMessage.objects.create(origin=CAROL, message_id="old", received_ts=1_000)
    FederatedToDeviceMessage.objects.create(
        origin=CAROL,
        message_id="new",
        received_ts=1_000 + service.FEDERATED_TO_DEVICE_RETENTION_MS,
    )
    monkeypatch.setattr(
        service, "now_ms", lambda: 1_001 + service.FEDERATED_TO_DEVICE_RETENTION_MS
    )

    assert service.do_purge_federated_message_ids() == 1
    assert list(FederatedToDeviceMessage.objects.values_list("message_id", flat=True)) == ["new"]


def test_the_edu_handler_is_registered() -> None:
    from federation import edus

    assert edus.handler_for("m.direct_to_device") is service.receive_direct_to_device
