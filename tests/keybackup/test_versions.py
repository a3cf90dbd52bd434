"""Key backup versions: POST/GET /room_keys/version, GET/PUT/DELETE /room_keys/version/{version}.

Client-Server API, "Server-side key backups": backups are per user; keys go to the most
recently created one; only ``auth_data`` of a backup can change.
"""

from __future__ import annotations

from keybackup.models import BackupSession, BackupVersion
from tests.conftest import MatrixTestClient, Persona
from tests.keybackup.helpers import ALGORITHM, AUTH_DATA, ROOM, create_version, key, keys_path


def test_a_new_backup_is_the_current_one(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)

    current = api.get("room_keys/version", token=alice.access_token)
    assert current.status == 200
    assert current.body == {
        "algorithm": ALGORITHM,
        "auth_data": AUTH_DATA,
        "count": 0,
        "etag": current.body["etag"],
        "version": version,
    }
    assert isinstance(current.body["etag"], str)
    by_version = api.get(f"room_keys/version/{version}", token=alice.access_token)
    assert by_version.status == 200
    assert by_version.body == current.body


def test_versions_count_up_and_the_newest_is_current(
    api: MatrixTestClient, alice: Persona
) -> None:
    first = create_version(api, alice)
    second = create_version(api, alice, {"public_key": "c2Vjb25k"})

    assert int(second) > int(first)
    current = api.get("room_keys/version", token=alice.access_token)
    assert current.body["version"] == second
    assert current.body["auth_data"] == {"public_key": "c2Vjb25k"}
    # The older backup is still there to read.
    older = api.get(f"room_keys/version/{first}", token=alice.access_token)
    assert older.status == 200
    assert older.body["auth_data"] == AUTH_DATA


def test_no_backup_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("room_keys/version", token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_an_unknown_version_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    create_version(api, alice)

    for version in ("99", "abc", "01", "-1", "\u0661"):
        response = api.get(f"room_keys/version/{version}", token=alice.access_token)
        assert response.status == 404, version
        assert response.errcode == "M_NOT_FOUND"


def test_update_replaces_the_auth_data(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    new_auth = {"public_key": "bmV3IGtleQ", "signatures": {}}

    response = api.put(
        f"room_keys/version/{version}",
        {"algorithm": ALGORITHM, "auth_data": new_auth, "version": version},
        token=alice.access_token,
    )

    assert response.status == 200
    assert response.body == {}
    info = api.get(f"room_keys/version/{version}", token=alice.access_token).body
    assert info["auth_data"] == new_auth
    assert info["version"] == version


def test_update_without_the_version_in_the_body(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)

    response = api.put(
        f"room_keys/version/{version}",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "b3RoZXI"}},
        token=alice.access_token,
    )

    assert response.status == 200
    assert api.get("room_keys/version", token=alice.access_token).body["auth_data"] == {
        "public_key": "b3RoZXI"
    }


def test_update_refuses_another_algorithm(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)

    response = api.put(
        f"room_keys/version/{version}",
        {"algorithm": "m.megolm_backup.v2", "auth_data": {"public_key": "x"}},
        token=alice.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert BackupVersion.objects.get(version=version).auth_data == AUTH_DATA


def test_update_refuses_a_body_version_other_than_the_path(
    api: MatrixTestClient, alice: Persona
) -> None:
    version = create_version(api, alice)

    response = api.put(
        f"room_keys/version/{version}",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "x"}, "version": "7"},
        token=alice.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert BackupVersion.objects.get(version=version).auth_data == AUTH_DATA


def test_update_of_an_unknown_version_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(
        "room_keys/version/5",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "x"}},
        token=alice.access_token,
    )

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"
    assert not BackupVersion.objects.exists()


def test_delete_removes_the_backup_and_its_keys(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    api.put(keys_path(version, ROOM, "s1"), key(), token=alice.access_token)
    assert BackupSession.objects.count() == 1

    response = api.delete(f"room_keys/version/{version}", token=alice.access_token)

    assert response.status == 200
    assert response.body == {}
    assert not BackupSession.objects.exists()
    for path in (
        f"room_keys/version/{version}",
        "room_keys/version",
        keys_path(version),
        keys_path(version, ROOM),
        keys_path(version, ROOM, "s1"),
    ):
        gone = api.get(path, token=alice.access_token)
        assert gone.status == 404, path
        assert gone.errcode == "M_NOT_FOUND"


def test_deleting_a_deleted_backup_succeeds(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    api.delete(f"room_keys/version/{version}", token=alice.access_token)

    again = api.delete(f"room_keys/version/{version}", token=alice.access_token)

    assert again.status == 200


def test_deleting_an_unknown_backup_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.delete("room_keys/version/3", token=alice.access_token)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_a_deleted_number_is_never_reused(api: MatrixTestClient, alice: Persona) -> None:
    first = create_version(api, alice)
    api.delete(f"room_keys/version/{first}", token=alice.access_token)

    second = create_version(api, alice)

    assert second != first
    assert api.get(f"room_keys/version/{first}", token=alice.access_token).status == 404


def test_deleting_the_newest_makes_the_previous_current(
    api: MatrixTestClient, alice: Persona
) -> None:
    first = create_version(api, alice)
    second = create_version(api, alice)

    api.delete(f"room_keys/version/{second}", token=alice.access_token)

    assert api.get("room_keys/version", token=alice.access_token).body["version"] == first


def test_another_users_backups_are_invisible(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    version = create_version(api, alice)

    assert api.get("room_keys/version", token=bob.access_token).status == 404
    assert api.get(f"room_keys/version/{version}", token=bob.access_token).status == 404
    update = api.put(
        f"room_keys/version/{version}",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "bob"}},
        token=bob.access_token,
    )
    assert update.status == 404
    assert api.delete(f"room_keys/version/{version}", token=bob.access_token).status == 404
    assert BackupVersion.objects.get(version=version, user__localpart="alice").auth_data == (
        AUTH_DATA
    )
    # Bob's own first backup is numbered on its own.
    assert create_version(api, bob) == "1"


def test_the_r0_prefix_answers(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)

    response = api.get("/_matrix/client/r0/room_keys/version", token=alice.access_token)

    assert response.status == 200
    assert response.body["version"] == version


def test_every_endpoint_needs_an_access_token(api: MatrixTestClient, alice: Persona) -> None:
    version = create_version(api, alice)
    calls = [
        ("POST", "room_keys/version", {"algorithm": ALGORITHM, "auth_data": AUTH_DATA}),
        ("GET", "room_keys/version", None),
        ("GET", f"room_keys/version/{version}", None),
        ("PUT", f"room_keys/version/{version}", {"algorithm": ALGORITHM, "auth_data": {}}),
        ("DELETE", f"room_keys/version/{version}", None),
        ("PUT", keys_path(version), {"rooms": {}}),
        ("GET", keys_path(version), None),
        ("DELETE", keys_path(version), None),
        ("PUT", keys_path(version, ROOM), {"sessions": {}}),
        ("GET", keys_path(version, ROOM), None),
        ("DELETE", keys_path(version, ROOM), None),
        ("PUT", keys_path(version, ROOM, "s1"), key()),
        ("GET", keys_path(version, ROOM, "s1"), None),
        ("DELETE", keys_path(version, ROOM, "s1"), None),
    ]
    for method, path, body in calls:
        response = api.request(method, path, body)
        assert response.status == 401, (method, path)
        assert response.errcode == "M_MISSING_TOKEN"
        bad_token = api.request(method, path, body, token="nonsense")
        assert bad_token.status == 401, (method, path)
        assert bad_token.errcode == "M_UNKNOWN_TOKEN"
    assert BackupVersion.objects.count() == 1
    assert not BackupVersion.objects.get().deleted
