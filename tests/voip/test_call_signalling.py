"""Call signalling (Client-Server API, "Voice over IP"): the m.call.* events are ordinary
room events the server relays unchanged, and clients may send them to devices too.

Alice calls Bob: every event of a call reaches the other party through /sync with its
content exactly as sent, in a room and over send-to-device.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, invite, join, send
from tests.sync.helpers import joined, sync

CALL_ID = "c.1414213562373095"
ALICE_PARTY = "p.67890"
BOB_PARTY = "p.31415"
OFFER_SDP = (
    "v=0\r\no=- 6584580628695956864 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n"
)
ANSWER_SDP = OFFER_SDP.replace("6584580628695956864", "4012887432113578").replace(
    "sendrecv", "recvonly"
)

# (who sends, event type, content): one whole call, then one Bob declines, then the
# version 0 invite older clients still send. Contents as the spec's examples have them.
CALL: list[tuple[str, str, dict[str, Any]]] = [
    (
        "alice",
        "m.call.invite",
        {
            "version": "1",
            "call_id": CALL_ID,
            "party_id": ALICE_PARTY,
            "lifetime": 60000,
            "offer": {"type": "offer", "sdp": OFFER_SDP},
            "sdp_stream_metadata": {
                "271828182845": {"purpose": "m.screenshare"},
                "314159265358": {"purpose": "m.usermedia"},
            },
        },
    ),
    (
        "alice",
        "m.call.candidates",
        {
            "version": "1",
            "call_id": CALL_ID,
            "party_id": ALICE_PARTY,
            "candidates": [
                {
                    "sdpMid": "audio",
                    "sdpMLineIndex": 0,
                    "candidate": "candidate:863018703 1 udp 2122260223 10.9.64.156 43670 "
                    "typ host generation 0",
                },
                {
                    "sdpMid": "audio",
                    "sdpMLineIndex": 0,
                    "candidate": "candidate:1 1 udp 41885439 203.0.113.7 50001 typ relay "
                    "raddr 10.9.64.156 rport 43670",
                },
            ],
        },
    ),
    (
        "bob",
        "m.call.answer",
        {
            "version": "1",
            "call_id": CALL_ID,
            "party_id": BOB_PARTY,
            "answer": {"type": "answer", "sdp": ANSWER_SDP},
            "sdp_stream_metadata": {"314159265358": {"purpose": "m.usermedia"}},
        },
    ),
    (
        "alice",
        "m.call.select_answer",
        {
            "version": "1",
            "call_id": CALL_ID,
            "party_id": ALICE_PARTY,
            "selected_party_id": BOB_PARTY,
        },
    ),
    (
        "bob",
        "m.call.negotiate",
        {
            "version": "1",
            "call_id": CALL_ID,
            "party_id": BOB_PARTY,
            "lifetime": 10000,
            "description": {"type": "offer", "sdp": OFFER_SDP},
            "sdp_stream_metadata": {"314159265358": {"purpose": "m.usermedia"}},
        },
    ),
    (
        "alice",
        "m.call.sdp_stream_metadata_changed",
        {
            "version": "1",
            "call_id": CALL_ID,
            "party_id": ALICE_PARTY,
            "sdp_stream_metadata": {
                "2311546231": {"purpose": "m.usermedia", "audio_muted": True, "video_muted": True}
            },
        },
    ),
    (
        "alice",
        "m.call.hangup",
        {"version": "1", "call_id": CALL_ID, "party_id": ALICE_PARTY, "reason": "user_hangup"},
    ),
    (
        "bob",
        "m.call.reject",
        {"version": "1", "call_id": "c.second", "party_id": BOB_PARTY},
    ),
    (
        "alice",
        "m.call.invite",
        {
            "version": 0,
            "call_id": "c.legacy",
            "lifetime": 30000,
            "offer": {"type": "offer", "sdp": OFFER_SDP},
        },
    ),
]

_txn = count()


@pytest.fixture
def call_room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room = create_room(api, alice, preset="private_chat", is_direct=True)
    invite(api, alice, room, bob)
    join(api, bob, room)
    return room


def other(who: str) -> str:
    return "bob" if who == "alice" else "alice"


@pytest.mark.parametrize(("sender", "event_type", "content"), CALL, ids=lambda v: v)
def test_the_other_party_sees_each_call_event_unchanged_through_sync(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    call_room: str,
    sender: str,
    event_type: str,
    content: dict[str, Any],
) -> None:
    people = {"alice": alice, "bob": bob}
    receiver = people[other(sender)]
    since = sync(api, receiver)["next_batch"]

    event_id = send(api, people[sender], call_room, content, event_type=event_type)

    timeline = joined(sync(api, receiver, since=since))[call_room]["timeline"]["events"]
    (event,) = [e for e in timeline if e["event_id"] == event_id]
    assert event["type"] == event_type
    assert event["sender"] == people[sender].user_id
    assert event["content"] == content


def test_a_whole_call_arrives_in_order(
    api: MatrixTestClient, alice: Persona, bob: Persona, call_room: str
) -> None:
    people = {"alice": alice, "bob": bob}
    since = {name: sync(api, who)["next_batch"] for name, who in people.items()}

    sent = [
        send(api, people[sender], call_room, content, event_type=event_type)
        for sender, event_type, content in CALL
    ]

    for name, who in people.items():
        timeline = joined(sync(api, who, since=since[name]))[call_room]["timeline"]["events"]
        assert [e["event_id"] for e in timeline] == sent
        assert [(e["type"], e["content"]) for e in timeline] == [(t, c) for _, t, c in CALL]


@pytest.mark.parametrize(("sender", "event_type", "content"), CALL, ids=lambda v: v)
def test_call_signalling_to_a_device_arrives_unchanged(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    sender: str,
    event_type: str,
    content: dict[str, Any],
) -> None:
    people = {"alice": alice, "bob": bob}
    receiver = people[other(sender)]
    since = sync(api, receiver)["next_batch"]

    response = api.put(
        f"sendToDevice/{event_type}/call{next(_txn)}",
        {"messages": {receiver.user_id: {receiver.device_id: content}}},
        token=people[sender].access_token,
    )

    assert response.status == 200, response.body
    events = sync(api, receiver, since=since)["to_device"]["events"]
    assert events == [{"sender": people[sender].user_id, "type": event_type, "content": content}]


def test_a_call_invite_notifies_the_callee(
    api: MatrixTestClient, alice: Persona, bob: Persona, call_room: str
) -> None:
    # The predefined underride rule .m.rule.call: notify, with the "ring" sound.
    since = sync(api, bob)["next_batch"]
    _, event_type, content = CALL[0]

    event_id = send(api, alice, call_room, content, event_type=event_type)

    room = joined(sync(api, bob, since=since))[call_room]
    assert room["unread_notifications"]["notification_count"] == 1
    notifications = api.get("notifications", token=bob.access_token).body["notifications"]
    (notified,) = [n for n in notifications if n["event"]["event_id"] == event_id]
    assert {"set_tweak": "sound", "value": "ring"} in notified["actions"]
