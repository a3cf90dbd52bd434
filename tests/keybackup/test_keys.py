"""Keys in a backup: PUT/GET/DELETE /room_keys/keys[/{roomId}[/{sessionId}]].

Client-Server API, "Server-side key backups": keys go to the current backup only; a key
for a session already stored replaces it only if it is better (verified first, then a
lower first_message_index, then a lower forwarded_count); every change moves the etag;
count is the number of keys in the backup.
"""

from __future__ import annotations

from typing import Any

import pytest

from keybackup.models import BackupSession
from tests.conftest import MatrixTestClient, Persona
from tests.keybackup.helpers import OTHER_ROOM, ROOM, create_version, key, keys_path


def version_info(api: MatrixTestClient, who: Persona, version: str) -> dict[str, Any]:
    response = api.get(f"room_keys/version/{version}", token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def test_a_round_trip_through_every_endpoint(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    etag0 = version_info(api, alice, version)["etag"]

    bulk = api.put(
        keys_path(version),
        {
            "rooms": {
                ROOM: {"sessions": {"s1": key(marker="1"), "s2": key(marker="2")}},
                OTHER_ROOM: {"sessions": {"s3": key(marker="3")}},
            }
        },
        token=alice.access_token,
    )
    assert bulk.status == 200, bulk.body
    assert bulk.body["count"] == 3
    assert bulk.body["etag"] != etag0

    per_room = api.put(
        keys_path(version, OTHER_ROOM),
        {"sessions": {"s4": key(marker="4")}},
        token=alice.access_token,
    )
    assert per_room.status == 200
    assert per_room.body["count"] == 4
    assert per_room.body["etag"] not in (etag0, bulk.body["etag"])

    per_session = api.put(
        keys_path(version, ROOM, "s5"), key(3, 1, True, marker="5"), token=alice.access_token
    )
    assert per_session.status == 200
    assert per_session.body["count"] == 5
    info = version_info(api, alice, version)
    assert info["count"] == 5
    assert info["etag"] == per_session.body["etag"]

    everything = api.get(keys_path(version), token=alice.access_token)
    assert everything.status == 200
    assert everything.body == {
        "rooms": {
            ROOM: {
                "sessions": {
                    "s1": key(marker="1"),
                    "s2": key(marker="2"),
                    "s5": key(3, 1, True, marker="5"),
                }
            },
            OTHER_ROOM: {"sessions": {"s3": key(marker="3"), "s4": key(marker="4")}},
        }
    }
    room = api.get(keys_path(version, OTHER_ROOM), token=alice.access_token)
    assert room.status == 200
    assert room.body == {"sessions": {"s3": key(marker="3"), "s4": key(marker="4")}}
    one = api.get(keys_path(version, ROOM, "s5"), token=alice.access_token)
    assert one.status == 200
    assert one.body == key(3, 1, True, marker="5")

    deleted_session = api.delete(keys_path(version, ROOM, "s1"), token=alice.access_token)
    assert deleted_session.status == 200
    assert deleted_session.body["count"] == 4
    assert deleted_session.body["etag"] != info["etag"]
    assert api.get(keys_path(version, ROOM, "s1"), token=alice.access_token).status == 404

    deleted_room = api.delete(keys_path(version, OTHER_ROOM), token=alice.access_token)
    assert deleted_room.status == 200
    assert deleted_room.body["count"] == 2
    assert deleted_room.body["etag"] != deleted_session.body["etag"]
    assert api.get(keys_path(version, OTHER_ROOM), token=alice.access_token).body == {
        "sessions": {}
    }

    deleted_all = api.delete(keys_path(version), token=alice.access_token)
    assert deleted_all.status == 200
    assert deleted_all.body["count"] == 0
    assert deleted_all.body["etag"] != deleted_room.body["etag"]
    assert api.get(keys_path(version), token=alice.access_token).body == {"rooms": {}}
    assert version_info(api, alice, version)["count"] == 0


def test_an_empty_backup_reads_as_empty(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)

    assert api.get(keys_path(version), token=alice.access_token).body == {"rooms": {}}
    assert api.get(keys_path(version, ROOM), token=alice.access_token).body == {"sessions": {}}
    missing = api.get(keys_path(version, ROOM, "nope"), token=alice.access_token)
    assert missing.status == 404
    assert missing.errcode == "M_NOT_FOUND"


def upload(api: MatrixTestClient, who: Persona, version: str, data: dict[str, Any]) -> Any:
    response = api.put(keys_path(version, ROOM, "s1"), data, token=who.access_token)
    assert response.status == 200, response.body
    return response.body


def stored(api: MatrixTestClient, who: Persona, version: str) -> Any:
    return api.get(keys_path(version, ROOM, "s1"), token=who.access_token).body


# (stored key, uploaded key, whether the upload replaces the stored one)
REPLACEMENTS = [
    pytest.param(key(5, 5, False), key(9, 9, True), True, id="verified-beats-unverified"),
    pytest.param(key(9, 9, True), key(0, 0, False), False, id="unverified-never-beats-verified"),
    pytest.param(key(5, 0, False), key(4, 9, False), True, id="lower-index-wins"),
    pytest.param(key(4, 0, True), key(5, 0, True), False, id="higher-index-loses"),
    pytest.param(key(4, 3, False), key(4, 2, False), True, id="equal-index-lower-forwards-wins"),
    pytest.param(key(4, 2, True), key(4, 3, True), False, id="equal-index-more-forwards-loses"),
    pytest.param(key(4, 2, False), key(4, 2, False), False, id="equal-keeps-the-stored"),
]


@pytest.mark.parametrize(("first", "second", "replaces"), REPLACEMENTS)
def test_which_key_is_kept(
    api: MatrixTestClient,
    alice: Persona,
    first: dict[str, Any],
    second: dict[str, Any],
    replaces: bool,
) -> None:
    version = create_version(api, alice)
    first = {**first, "session_data": {"ciphertext": "first"}}
    second = {**second, "session_data": {"ciphertext": "second"}}
    before = upload(api, alice, version, first)

    after = upload(api, alice, version, second)

    assert stored(api, alice, version) == (second if replaces else first)
    assert after["count"] == 1
    assert (after["etag"] != before["etag"]) is replaces


def test_the_rules_apply_within_a_bulk_upload(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    api.put(
        keys_path(version),
        {"rooms": {ROOM: {"sessions": {"keep": key(1, 0, True), "swap": key(5, 0)}}}},
        token=alice.access_token,
    )

    response = api.put(
        keys_path(version),
        {
            "rooms": {
                ROOM: {"sessions": {"keep": key(0, 0, False, "x"), "swap": key(2, 0, False, "y")}},
                OTHER_ROOM: {"sessions": {"keep": key(7, 0)}},
            }
        },
        token=alice.access_token,
    )

    assert response.body["count"] == 3
    sessions = api.get(keys_path(version, ROOM), token=alice.access_token).body["sessions"]
    assert sessions == {"keep": key(1, 0, True), "swap": key(2, 0, False, "y")}
    # The same session ID in another room is another key.
    assert api.get(keys_path(version, OTHER_ROOM, "keep"), token=alice.access_token).body == key(
        7, 0
    )


def test_an_upload_that_changes_nothing_keeps_the_etag(
    api: MatrixTestClient, alice: Persona
) -> None:
    version = create_version(api, alice)
    first = api.put(
        keys_path(version, ROOM), {"sessions": {"s1": key()}}, token=alice.access_token
    )

    same = api.put(keys_path(version, ROOM), {"sessions": {"s1": key()}}, token=alice.access_token)
    nothing = api.put(keys_path(version), {"rooms": {}}, token=alice.access_token)

    assert same.body == first.body
    assert nothing.body == first.body


def test_deleting_nothing_keeps_the_etag(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    stored_ = api.put(keys_path(version, ROOM, "s1"), key(), token=alice.access_token).body

    for path in (keys_path(version, OTHER_ROOM), keys_path(version, ROOM, "s2")):
        response = api.delete(path, token=alice.access_token)
        assert response.status == 200
        assert response.body == stored_


def test_keys_go_to_the_current_backup_only(api: MatrixTestClient, alice: Persona) -> None:
    old = create_version(api, alice)
    api.put(keys_path(old, ROOM, "s1"), key(), token=alice.access_token)
    current = create_version(api, alice)

    for path, body in (
        (keys_path(old), {"rooms": {ROOM: {"sessions": {"s2": key()}}}}),
        (keys_path(old, ROOM), {"sessions": {"s2": key()}}),
        (keys_path(old, ROOM, "s2"), key()),
    ):
        response = api.put(path, body, token=alice.access_token)
        assert response.status == 403, path
        assert response.errcode == "M_WRONG_ROOM_KEYS_VERSION"
        assert response.body["current_version"] == current
    assert BackupSession.objects.count() == 1
    # The old backup can still be read and emptied.
    assert api.get(keys_path(old, ROOM, "s1"), token=alice.access_token).body == key()
    assert api.delete(keys_path(old), token=alice.access_token).body["count"] == 0


def test_uploading_to_a_deleted_backup_names_the_current_one(
    api: MatrixTestClient, alice: Persona
) -> None:
    current = create_version(api, alice)
    deleted = create_version(api, alice)
    api.delete(f"room_keys/version/{deleted}", token=alice.access_token)

    response = api.put(keys_path(deleted, ROOM, "s1"), key(), token=alice.access_token)

    assert response.status == 403
    assert response.errcode == "M_WRONG_ROOM_KEYS_VERSION"
    assert response.body["current_version"] == current
    assert not BackupSession.objects.exists()


@pytest.mark.parametrize("version", ["1", "2", "nope"])
def test_uploading_without_a_backup_is_not_found(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    if version == "1":
        deleted = create_version(api, alice)
        api.delete(f"room_keys/version/{deleted}", token=alice.access_token)

    response = api.put(keys_path(version, ROOM, "s1"), key(), token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"
    assert not BackupSession.objects.exists()


def test_an_unknown_version_is_not_found_for_keys(api: MatrixTestClient, alice: Persona) -> None:
    create_version(api, alice)

    for method in ("GET", "DELETE"):
        for path in (keys_path("9"), keys_path("9", ROOM), keys_path("9", ROOM, "s1")):
            response = api.request(method, path, token=alice.access_token)
            assert response.status == 404, (method, path)
            assert response.errcode == "M_NOT_FOUND"
    upload = api.put(keys_path("9", ROOM, "s1"), key(), token=alice.access_token)
    assert upload.status == 404
    assert upload.errcode == "M_NOT_FOUND"


def test_another_users_keys_are_invisible(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    version = create_version(api, alice)
    api.put(keys_path(version, ROOM, "s1"), key(), token=alice.access_token)

    for method in ("GET", "DELETE"):
        for path in (keys_path(version), keys_path(version, ROOM), keys_path(version, ROOM, "s1")):
            response = api.request(method, path, token=bob.access_token)
            assert response.status == 404, (method, path)
            assert response.errcode == "M_NOT_FOUND"
    upload = api.put(keys_path(version, ROOM, "s2"), key(), token=bob.access_token)
    assert upload.status == 404
    assert BackupSession.objects.count() == 1


def test_room_ids_of_every_room_version_are_accepted(
    api: MatrixTestClient, alice: Persona
) -> None:
    version = create_version(api, alice)
    # Room version 12 room IDs have no server name.
    v12_room = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"

    response = api.put(keys_path(version, v12_room, "s1"), key(), token=alice.access_token)

    assert response.status == 200
    assert api.get(keys_path(version, v12_room, "s1"), token=alice.access_token).body == key()


def test_many_keys_in_one_upload(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    rooms = {
        f"!r{r}:localhost:8008": {"sessions": {f"s{s}": key(s, 0) for s in range(120)}}
        for r in range(10)
    }

    first = api.put(keys_path(version), {"rooms": rooms}, token=alice.access_token)
    assert first.status == 200
    assert first.body["count"] == 1200
    # Every key again, half of them better: all are looked up, only those replaced.
    better = {
        room_id: {
            "sessions": {f"s{s}": key(s - 1 if s % 2 else s, 0, marker="b") for s in range(120)}
        }
        for room_id in rooms
    }
    second = api.put(keys_path(version), {"rooms": better}, token=alice.access_token)
    assert second.body["count"] == 1200
    assert second.body["etag"] != first.body["etag"]
    room = api.get(keys_path(version, "!r3:localhost:8008"), token=alice.access_token)
    assert room.body["sessions"]["s7"] == key(6, 0, marker="b")
    assert room.body["sessions"]["s8"] == key(8, 0)


def test_session_ids_with_slashes_and_pluses(api: MatrixTestClient, alice: Persona) -> None:
    # Megolm session IDs are unpadded standard base64: "/" and "+" are common.
    version = create_version(api, alice)
    session_id = "Ab/cd+Ef/GHijk+lmnopqrstuvwxyz0123456789/AB"

    stored = api.put(keys_path(version, ROOM, session_id), key(), token=alice.access_token)

    assert stored.status == 200, stored.body
    assert api.get(keys_path(version, ROOM, session_id), token=alice.access_token).body == key()
    everything = api.get(keys_path(version), token=alice.access_token).body
    assert everything == {"rooms": {ROOM: {"sessions": {session_id: key()}}}}
    deleted = api.delete(keys_path(version, ROOM, session_id), token=alice.access_token)
    assert deleted.body["count"] == 0
