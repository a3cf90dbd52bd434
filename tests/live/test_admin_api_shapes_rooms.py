"""The rooms, reports, media and federation admin API answers in Synapse's shapes: the
same scenario on a Trellis and a Synapse (a room with members and messages, a reported
event, an uploaded image sent in the room), the same admin requests to both, the answers
compared field by field (tests/live/admin_compare.py).

Server notices are left out: the shared pair's Synapse has them switched off (its
``server_notices`` setting), and then answers 400 whatever is asked.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from tests.live.admin_compare import (
    AdminPair,
    AdminServer,
    admin_pair,  # noqa: F401 (the fixture)
    assert_same_answer,
    assert_same_shape,
)

pytestmark = pytest.mark.live

C = "/_matrix/client/v3"
A1 = "/_synapse/admin/v1"
A2 = "/_synapse/admin/v2"
DELETE_TIMEOUT_S = 60


@dataclass
class Scene:
    """What the scenario made on one server."""

    room_id: str
    alias: str
    message_id: str
    media_id: str
    report_id: int


def _q(value: str) -> str:
    return quote(value, safe="")


def _ok(server: AdminServer, answer: tuple[int, Any]) -> Any:
    status, body = answer
    assert status == 200, (server.name, status, body)
    return body


def _upload(server: AdminServer, data: bytes) -> str:
    request = urllib.request.Request(
        f"{server.url}/_matrix/media/v3/upload?filename=dot.png",
        data=data,
        headers={
            "Content-Type": "image/png",
            "Authorization": f"Bearer {server.accounts['alice'].access_token}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        uri: str = json.loads(response.read())["content_uri"]
    return uri.rsplit("/", 1)[1]


# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b9d7a8"
    "0000000049454e44ae426082"
)


def _scene(server: AdminServer) -> Scene:
    alice = server.accounts["alice"].access_token
    bob = server.accounts["bob"].access_token
    name = f"shapes{secrets.token_hex(3)}"
    room_id = _ok(
        server,
        server.call(
            "POST",
            f"{C}/createRoom",
            {"name": "Shapes", "room_alias_name": name, "preset": "public_chat"},
            alice,
        ),
    )["room_id"]
    _ok(server, server.call("POST", f"{C}/join/{_q(room_id)}", {}, bob))
    send = f"{C}/rooms/{_q(room_id)}/send/m.room.message"
    message_id = _ok(
        server, server.call("PUT", f"{send}/t1", {"msgtype": "m.text", "body": "hello"}, alice)
    )["event_id"]
    _ok(server, server.call("PUT", f"{send}/t2", {"msgtype": "m.text", "body": "hi"}, bob))
    media_id = _upload(server, PNG)
    image = {
        "msgtype": "m.image",
        "body": "dot.png",
        "url": f"mxc://{server.server_name}/{media_id}",
    }
    _ok(server, server.call("PUT", f"{send}/t3", image, alice))
    report = {"reason": "rude", "score": -100}
    _ok(
        server,
        server.call("POST", f"{C}/rooms/{_q(room_id)}/report/{_q(message_id)}", report, bob),
    )
    reports = _ok(server, server.as_admin("GET", f"{A1}/event_reports?room_id={_q(room_id)}"))
    return Scene(
        room_id,
        f"#{name}:{server.server_name}",
        message_id,
        media_id,
        reports["event_reports"][0]["id"],
    )


@pytest.fixture(scope="module")
def scenes(admin_pair: AdminPair) -> dict[str, Scene]:  # noqa: F811
    return {server.name: _scene(server) for server in admin_pair.servers}


def both(
    admin_pair: AdminPair,  # noqa: F811
    scenes: dict[str, Scene],
    method: str,
    path: str,
    body: Any = None,
    token: str = "admin",
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """One request to both servers; ``path`` may use {room}, {alias}, {event}, {media},
    {report}, {server_name} and {alice} (quoted)."""

    def resolved(server: AdminServer) -> str:
        scene = scenes[server.name]
        return path.format(
            room=_q(scene.room_id),
            alias=_q(scene.alias),
            event=_q(scene.message_id),
            media=scene.media_id,
            report=scene.report_id,
            server_name=server.server_name,
            alice=_q(server.user_id("alice")),
        )

    return admin_pair.both(method, resolved, body, token=token)


def test_room_list_and_details(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms?search_term=Shapes"))
    assert_same_answer(
        both(admin_pair, scenes, "GET", f"{A1}/rooms?limit=1&order_by=joined_members")
    )
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}"))
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}/members"))
    # State contents are data: the two servers' default power levels differ.
    assert_same_answer(
        both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}/state"), ignore=["state[].content"]
    )
    assert_same_answer(
        both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}/forward_extremities"),
        # Trellis does not store when an event arrived (null).
        ignore=["results[].received_ts"],
    )


def test_room_messages(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    (ours_status, ours), (theirs_status, theirs) = both(
        admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}/messages?dir=b&limit=3"
    )
    assert ours_status == theirs_status == 200
    assert [e["type"] for e in ours["chunk"]] == [e["type"] for e in theirs["chunk"]]
    assert_same_shape(ours, theirs)


def test_errors_answer_alike(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    unknown = _q("!unknown:example.org")
    for path in [
        f"{A1}/rooms/{unknown}",
        f"{A1}/rooms/{unknown}/members",
        f"{A1}/rooms/{unknown}/state",
        f"{A1}/event_reports/999999",
        f"{A1}/media/{{server_name}}/nonexistent",
    ]:
        assert_same_answer(both(admin_pair, scenes, "GET", path))
    for path in [f"{A1}/rooms", f"{A1}/rooms/{{room}}", f"{A1}/event_reports"]:
        assert_same_answer(both(admin_pair, scenes, "GET", path, token="alice"))
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms?order_by=nonsense"))
    assert_same_answer(both(admin_pair, scenes, "PUT", f"{A1}/rooms/{{room}}/block", {"block": 1}))


def test_event_reports(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/event_reports"))
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/event_reports?user_id={{alice}}"))
    (ours_status, ours), (theirs_status, theirs) = both(
        admin_pair, scenes, "GET", f"{A1}/event_reports/{{report}}"
    )
    assert ours_status == theirs_status == 200
    # event_json is the PDU as each server stores it: the room versions differ (v12 here,
    # v10 there) and so do the PDU formats; its content is the same.
    assert ours["event_json"]["content"] == theirs["event_json"]["content"]
    assert_same_shape(ours, theirs, ignore=["event_json"])


def test_media(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/room/{{room}}/media"))
    # Synapse on SQLite (as here) answers its booleans as 0 and 1; on PostgreSQL, as
    # booleans, as Trellis does.
    assert_same_answer(
        both(admin_pair, scenes, "GET", f"{A1}/media/{{server_name}}/{{media}}"),
        ignore=["media_info.authenticated", "media_info.safe_from_quarantine"],
    )
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/statistics/users/media"))
    assert_same_answer(both(admin_pair, scenes, "POST", f"{A1}/media/protect/{{media}}", {}))
    assert_same_answer(
        both(admin_pair, scenes, "POST", f"{A1}/room/{{room}}/media/quarantine", {})
    )
    assert_same_answer(both(admin_pair, scenes, "POST", f"{A1}/media/unprotect/{{media}}", {}))
    assert_same_answer(
        both(admin_pair, scenes, "POST", f"{A1}/media/quarantine/{{server_name}}/{{media}}", {})
    )
    assert_same_answer(
        both(admin_pair, scenes, "POST", f"{A1}/media/unquarantine/{{server_name}}/{{media}}", {})
    )
    assert_same_answer(
        both(admin_pair, scenes, "POST", f"{A1}/user/{{alice}}/media/quarantine", {})
    )


def test_federation_destinations(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/federation/destinations"))
    assert_same_answer(
        both(admin_pair, scenes, "GET", f"{A1}/federation/destinations/nowhere.example")
    )


def test_block_make_admin_and_delete(admin_pair: AdminPair, scenes: dict[str, Scene]) -> None:  # noqa: F811
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}/block"))
    assert_same_answer(
        both(admin_pair, scenes, "POST", f"{A1}/rooms/{{alias}}/make_room_admin", {})
    )
    answers = both(
        admin_pair,
        scenes,
        "DELETE",
        f"{A2}/rooms/{{room}}",
        # Without the purge: Trellis's waits for the members' clients (about a minute).
        {"new_room_user_id": None, "block": True, "purge": False},
    )
    assert_same_answer(answers)
    ids = {"trellis": answers[0][1]["delete_id"], "synapse": answers[1][1]["delete_id"]}
    deadline = time.monotonic() + DELETE_TIMEOUT_S
    while True:
        statuses = {
            server.name: _ok(
                server, server.as_admin("GET", f"{A2}/rooms/delete_status/{ids[server.name]}")
            )
            for server in admin_pair.servers
        }
        if all(s["status"] in ("complete", "failed") for s in statuses.values()):
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)
    assert statuses["trellis"]["status"] == statuses["synapse"]["status"] == "complete"
    assert_same_shape(statuses["trellis"], statuses["synapse"])
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A2}/rooms/{{room}}/delete_status"))
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}/block"))
    assert_same_answer(both(admin_pair, scenes, "GET", f"{A1}/rooms/{{room}}"))
