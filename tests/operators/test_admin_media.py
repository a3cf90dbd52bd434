"""The Synapse admin API for media: quarantine (by item, room, user), protection,
deletion (by item, by age and size), a room's media, an item's record, and the users'
media statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.clock import now_ms
from media.models import LocalMedia, RemoteMedia
from operators.models import AuditEntry
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import MEDIA_V1, image_bytes, media_id_of, stored_files, upload
from tests.operators.conftest import ADMIN_V1, q
from tests.rooms.helpers import create_room, send

SERVER = "localhost:8008"


def uploaded(api: MatrixTestClient, who: Persona, data: bytes = b"hello") -> str:
    return media_id_of(upload(api, who, data, "text/plain", filename="f.txt"))


def download_status(api: MatrixTestClient, who: Persona, media_id: str) -> int:
    return api.get(f"{MEDIA_V1}/download/{SERVER}/{media_id}", token=who.access_token).status


def post(api: MatrixTestClient, who: Persona, path: str) -> Any:
    return api.post(f"{ADMIN_V1}/{path}", {}, token=who.access_token)


def remote_media(origin: str = "elsewhere.example", media_id: str = "remoteABC") -> RemoteMedia:
    now = now_ms()
    return RemoteMedia.objects.create(
        origin=origin,
        media_id=media_id,
        file_id=f"file-{media_id}",
        content_type="image/png",
        size=10,
        storage_name=f"remote/{media_id}",
        created_ts=now,
        claimed_ts=now,
        fetched_ts=now,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "media/quarantine/localhost:8008/abc"),
        ("POST", "media/unquarantine/localhost:8008/abc"),
        ("POST", "room/!r:localhost:8008/media/quarantine"),
        ("POST", "user/@alice:localhost:8008/media/quarantine"),
        ("POST", "media/protect/abc"),
        ("POST", "media/unprotect/abc"),
        ("GET", "media/localhost:8008/abc"),
        ("DELETE", "media/localhost:8008/abc"),
        ("POST", "media/delete?before_ts=1"),
        ("GET", "room/!r:localhost:8008/media"),
        ("GET", "statistics/users/media"),
    ],
)
def test_media_endpoints_are_for_server_admins_only(
    api: MatrixTestClient, alice: Persona, method: str, path: str
) -> None:
    media_id = uploaded(api, alice)
    response = api.request(
        method, f"{ADMIN_V1}/{path.replace('abc', media_id)}", {}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert LocalMedia.objects.get(media_id=media_id).quarantined_by is None


def test_quarantine_and_release_one_item(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    media_id = uploaded(api, alice)

    assert post(api, admin, f"media/quarantine/{SERVER}/{media_id}").body == {}

    assert download_status(api, alice, media_id) == 404
    assert LocalMedia.objects.get(media_id=media_id).quarantined_by == admin.user_id
    info = api.get(f"{ADMIN_V1}/media/{SERVER}/{media_id}", token=admin.access_token).body
    assert info["media_info"]["quarantined_by"] == admin.user_id

    assert post(api, admin, f"media/unquarantine/{SERVER}/{media_id}").status == 200

    assert download_status(api, alice, media_id) == 200
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "target"))
    uri = f"mxc://{SERVER}/{media_id}"
    assert actions == [("media.quarantine", uri), ("media.unquarantine", uri)]


def test_remote_media_is_quarantined_too(api: MatrixTestClient, admin: Persona) -> None:
    cached = remote_media()

    response = post(api, admin, "media/quarantine/elsewhere.example/remoteABC")

    assert response.status == 200
    cached.refresh_from_db()
    assert cached.quarantined_by == admin.user_id


def test_unknown_media_is_404(api: MatrixTestClient, admin: Persona) -> None:
    for method, path in [
        ("POST", f"media/quarantine/{SERVER}/nothing"),
        ("POST", "media/quarantine/elsewhere.example/nothing"),
        ("POST", f"media/unquarantine/{SERVER}/nothing"),
        ("POST", "media/protect/nothing"),
        ("POST", "media/unprotect/nothing"),
        ("GET", f"media/{SERVER}/nothing"),
        ("GET", "media/elsewhere.example/nothing"),
        ("DELETE", f"media/{SERVER}/nothing"),
        ("POST", f"media/quarantine/{SERVER}/bad..id"),
    ]:
        response = api.request(method, f"{ADMIN_V1}/{path}", {}, token=admin.access_token)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND"), path
    assert not AuditEntry.objects.exists()


def test_quarantining_a_rooms_media_spares_protected_items(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    room = create_room(api, alice)
    sticker = uploaded(api, alice, b"sticker")
    picture = uploaded(api, alice, b"picture")
    elsewhere = uploaded(api, alice, b"not in the room")
    cached = remote_media()
    send(api, alice, room, {"msgtype": "m.image", "body": "p", "url": f"mxc://{SERVER}/{picture}"})
    send(
        api, alice, room, {"body": "s", "url": f"mxc://{SERVER}/{sticker}"}, event_type="m.sticker"
    )
    send(
        api,
        alice,
        room,
        {"msgtype": "m.image", "body": "r", "url": "mxc://elsewhere.example/remoteABC"},
    )
    assert post(api, admin, f"media/protect/{sticker}").status == 200

    listed = api.get(f"{ADMIN_V1}/room/{q(room)}/media", token=admin.access_token).body
    response = post(api, admin, f"room/{q(room)}/media/quarantine")

    assert listed == {
        "local": sorted([f"mxc://{SERVER}/{picture}", f"mxc://{SERVER}/{sticker}"]),
        "remote": ["mxc://elsewhere.example/remoteABC"],
    }
    assert response.body == {"num_quarantined": 2}
    assert download_status(api, alice, picture) == 404
    assert download_status(api, alice, sticker) == 200
    assert download_status(api, alice, elsewhere) == 200
    cached.refresh_from_db()
    assert cached.quarantined_by is not None
    # Protection lifted, the next quarantine takes it.
    assert post(api, admin, f"media/unprotect/{sticker}").status == 200
    assert post(api, admin, f"room/{q(room)}/media/quarantine").body == {"num_quarantined": 1}
    assert download_status(api, alice, sticker) == 404


def test_quarantining_a_users_media(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    mine = [uploaded(api, alice, b"a"), uploaded(api, alice, b"b")]
    theirs = uploaded(api, bob, b"c")

    response = post(api, admin, f"user/{q(alice.user_id)}/media/quarantine")

    assert response.body == {"num_quarantined": 2}
    assert all(download_status(api, bob, m) == 404 for m in mine)
    assert download_status(api, alice, theirs) == 200
    unknown = post(api, admin, f"user/{q('@ghost:localhost:8008')}/media/quarantine")
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")


def test_quarantining_an_unknown_rooms_media_is_404(api: MatrixTestClient, admin: Persona) -> None:
    response = post(api, admin, f"room/{q('!nope:localhost:8008')}/media/quarantine")
    listing = api.get(
        f"{ADMIN_V1}/room/{q('!nope:localhost:8008')}/media", token=admin.access_token
    )

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
    assert (listing.status, listing.errcode) == (404, "M_NOT_FOUND")


def test_media_info_has_synapses_fields(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    media_id = uploaded(api, alice, b"12345")

    info = api.get(f"{ADMIN_V1}/media/{SERVER}/{media_id}", token=admin.access_token).body

    assert info["media_info"] == {
        "media_origin": SERVER,
        "user_id": alice.user_id,
        "media_id": media_id,
        "media_type": "text/plain",
        "media_length": 5,
        "upload_name": "f.txt",
        "created_ts": info["media_info"]["created_ts"],
        "filesystem_id": info["media_info"]["filesystem_id"],
        "url_cache": None,
        "last_access_ts": None,
        "quarantined_by": None,
        "authenticated": True,
        "safe_from_quarantine": False,
        "sha256": LocalMedia.objects.get(media_id=media_id).sha256,
    }
    assert isinstance(info["media_info"]["created_ts"], int)


def test_deleting_one_item_removes_its_file(
    api: MatrixTestClient,
    admin: Persona,
    alice: Persona,
    media_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(), "image/png"))
    assert stored_files(media_root)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(
            f"{ADMIN_V1}/media/{SERVER}/{media_id}", {}, token=admin.access_token
        )

    assert response.body == {"deleted_media": [media_id], "total": 1}
    assert not LocalMedia.objects.filter(media_id=media_id).exists()
    assert stored_files(media_root) == []
    assert download_status(api, alice, media_id) == 404
    remote = api.delete(
        f"{ADMIN_V1}/media/elsewhere.example/{media_id}", {}, token=admin.access_token
    )
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")


def test_deleting_old_media_by_date_and_size_keeps_avatars(
    api: MatrixTestClient, admin: Persona, alice: Persona
) -> None:
    small = uploaded(api, alice, b"x")
    big = uploaded(api, alice, b"x" * 100)
    avatar = uploaded(api, alice, b"y" * 100)
    protected = uploaded(api, alice, b"z" * 100)
    api.put(
        f"profile/{q(alice.user_id)}/avatar_url",
        {"avatar_url": f"mxc://{SERVER}/{avatar}"},
        token=alice.access_token,
    )
    post(api, admin, f"media/protect/{protected}")
    later = now_ms() + 1000

    response = post(api, admin, f"media/delete?before_ts={later}&size_gt=50")

    assert response.body == {"deleted_media": [big], "total": 1}
    remaining = set(LocalMedia.objects.values_list("media_id", flat=True))
    assert remaining == {small, avatar, protected}

    everything = post(api, admin, f"media/delete?before_ts={later}&keep_profiles=false")

    assert sorted(everything.body["deleted_media"]) == sorted([small, avatar])
    assert AuditEntry.objects.filter(action="media.delete_old").count() == 2


@pytest.mark.parametrize(
    "query", ["", "?before_ts=abc", "?before_ts=1&size_gt=-1", "?before_ts=1&keep_profiles=no"]
)
def test_bad_delete_parameters_are_400(
    api: MatrixTestClient, admin: Persona, alice: Persona, query: str
) -> None:
    media_id = uploaded(api, alice)

    response = post(api, admin, f"media/delete{query}")

    assert response.status == 400
    assert LocalMedia.objects.filter(media_id=media_id).exists()


def test_users_media_statistics(
    api: MatrixTestClient, admin: Persona, alice: Persona, bob: Persona
) -> None:
    uploaded(api, alice, b"aaaa")
    uploaded(api, alice, b"bbbb")
    uploaded(api, bob, b"c")
    api.put(
        f"profile/{q(bob.user_id)}/displayname", {"displayname": "Bobby"}, token=bob.access_token
    )

    body = api.get(f"{ADMIN_V1}/statistics/users/media", token=admin.access_token).body
    by_size = api.get(
        f"{ADMIN_V1}/statistics/users/media?order_by=media_length&dir=b&limit=1",
        token=admin.access_token,
    ).body
    search = api.get(
        f"{ADMIN_V1}/statistics/users/media?search_term=bobb", token=admin.access_token
    ).body

    assert body == {
        "users": [
            {
                "user_id": alice.user_id,
                "displayname": "alice",
                "media_count": 2,
                "media_length": 8,
            },
            {"user_id": bob.user_id, "displayname": "Bobby", "media_count": 1, "media_length": 1},
        ],
        "total": 2,
    }
    assert by_size["users"][0]["user_id"] == alice.user_id
    assert by_size["next_token"] == 1
    assert [u["user_id"] for u in search["users"]] == [bob.user_id]


@pytest.mark.parametrize(
    "query", ["order_by=size", "from=-1", "dir=x", "search_term=", "from_ts=5&until_ts=1"]
)
def test_bad_statistics_parameters_are_400(
    api: MatrixTestClient, admin: Persona, query: str
) -> None:
    response = api.get(f"{ADMIN_V1}/statistics/users/media?{query}", token=admin.access_token)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
