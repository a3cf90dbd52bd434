"""Operators and media: the admin list, quarantine, release, delete (by item, by
uploader, by room), and what clients see afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from media.models import LocalMedia, Thumbnail
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import MEDIA_V1, image_bytes, media_id_of, stored_files, upload

SERVER = "localhost:8008"
CHANGELIST = "/admin/media/localmedia/"


@pytest.fixture
def operator(db: None) -> Client:
    User.objects.create_superuser("operator", "secret-password")
    client = Client()
    assert client.login(username="operator", password="secret-password")
    return client


def download_status(api: MatrixTestClient, who: Persona, media_id: str) -> tuple[int, str | None]:
    got = api.get(f"{MEDIA_V1}/download/{SERVER}/{media_id}", token=who.access_token)
    return got.status, got.errcode


def thumbnail_status(api: MatrixTestClient, who: Persona, media_id: str) -> int:
    path = f"{MEDIA_V1}/thumbnail/{SERVER}/{media_id}?width=32&height=32&method=crop"
    return api.get(path, token=who.access_token).status


def act(operator: Client, action: str, *media_ids: str) -> None:
    pks = LocalMedia.objects.filter(media_id__in=media_ids).values_list("pk", flat=True)
    response = operator.post(
        CHANGELIST, {"action": action, "_selected_action": [str(pk) for pk in pks]}
    )
    assert response.status_code == 302, response.content


def test_the_admin_lists_media_with_uploader_size_and_type(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    media_id = media_id_of(upload(api, alice, b"12345", "text/plain", filename="five.txt"))

    page = operator.get(CHANGELIST)

    assert page.status_code == 200
    html = page.content.decode()
    assert media_id in html
    assert alice.user_id in html
    assert "text/plain" in html
    assert "five.txt" in html
    assert operator.get(f"{CHANGELIST}?quarantined=yes").status_code == 200
    detail = operator.get(
        reverse("admin:media_localmedia_change", args=[LocalMedia.objects.get().pk])
    )
    assert detail.status_code == 200
    assert f"mxc://{SERVER}/{media_id}" in detail.content.decode()


def test_quarantined_media_cannot_be_downloaded_by_anyone(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png"))
    assert thumbnail_status(api, bob, media_id) == 200

    act(operator, "quarantine", media_id)

    assert download_status(api, bob, media_id) == (404, "M_NOT_FOUND")
    assert download_status(api, alice, media_id) == (404, "M_NOT_FOUND")
    assert thumbnail_status(api, bob, media_id) == 404
    assert LocalMedia.objects.get(media_id=media_id).quarantined_by == "@operator:localhost:8008"


def test_released_media_can_be_downloaded_again(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    media_id = media_id_of(upload(api, alice, b"x", "text/plain"))
    act(operator, "quarantine", media_id)

    act(operator, "unquarantine", media_id)

    assert download_status(api, alice, media_id) == (200, None)


def test_deleting_removes_rows_thumbnails_and_files(
    api: MatrixTestClient,
    alice: Persona,
    operator: Client,
    media_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(100, 100), "image/png"))
    kept = media_id_of(upload(api, alice, b"keep me", "text/plain"))
    assert thumbnail_status(api, alice, media_id) == 200
    assert len(stored_files(media_root)) == 3

    # The files go once the deletion commits.
    with django_capture_on_commit_callbacks(execute=True):
        act(operator, "delete_media", media_id)

    assert not LocalMedia.objects.filter(media_id=media_id).exists()
    assert Thumbnail.objects.count() == 0
    assert [p.name for p in stored_files(media_root)] == [kept]
    assert download_status(api, alice, media_id) == (404, "M_NOT_FOUND")


def test_all_media_of_a_user(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client
) -> None:
    alices = [media_id_of(upload(api, alice, b"a%d" % i, "text/plain")) for i in range(3)]
    bobs = media_id_of(upload(api, bob, b"b", "text/plain"))

    act(operator, "quarantine_uploaders_media", alices[0])

    assert all(download_status(api, bob, m)[0] == 404 for m in alices)
    assert download_status(api, alice, bobs) == (200, None)

    act(operator, "delete_uploaders_media", alices[0])

    assert not LocalMedia.objects.filter(user_id=alice.user_id).exists()
    assert LocalMedia.objects.filter(user_id=bob.user_id).count() == 1


def _room_with_media(api: MatrixTestClient, who: Persona, media_ids: list[str]) -> str:
    room = api.post("createRoom", {}, token=who.access_token)
    assert room.status == 200, room.body
    room_id = room.body["room_id"]
    contents = [
        {"msgtype": "m.image", "body": "a.png", "url": f"mxc://{SERVER}/{media_ids[0]}"},
        {
            "msgtype": "m.video",
            "body": "v.mp4",
            "url": "mxc://elsewhere.example/remote",
            "info": {"thumbnail_url": f"mxc://{SERVER}/{media_ids[1]}"},
        },
        {"msgtype": "m.text", "body": f"mxc://{SERVER}/{media_ids[2]} is only text"},
    ]
    for n, content in enumerate(contents):
        sent = api.put(
            f"rooms/{room_id}/send/m.room.message/t{n}", content, token=who.access_token
        )
        assert sent.status == 200, sent.body
    return str(room_id)


def test_all_media_of_a_room(api: MatrixTestClient, alice: Persona, operator: Client) -> None:
    media = [media_id_of(upload(api, alice, b"m%d" % i, "text/plain")) for i in range(3)]
    room_id = _room_with_media(api, alice, media)
    url = reverse("admin:media_localmedia_owner")
    assert operator.get(url).status_code == 200

    done = operator.post(url, {"target": room_id, "action": "quarantine"})

    assert done.status_code == 302
    assert download_status(api, alice, media[0])[0] == 404
    assert download_status(api, alice, media[1])[0] == 404
    # Only content.url and info.thumbnail_url count, not URIs in the text.
    assert download_status(api, alice, media[2]) == (200, None)

    operator.post(url, {"target": room_id, "action": "delete"})

    assert set(LocalMedia.objects.values_list("media_id", flat=True)) == {media[2]}


def test_all_media_of_a_user_by_user_id(
    api: MatrixTestClient, alice: Persona, bob: Persona, operator: Client
) -> None:
    alices = [media_id_of(upload(api, alice, b"a%d" % i, "text/plain")) for i in range(2)]
    bobs = media_id_of(upload(api, bob, b"b", "text/plain"))
    url = reverse("admin:media_localmedia_owner")

    done = operator.post(url, {"target": alice.user_id, "action": "quarantine"})

    assert done.status_code == 302
    assert all(download_status(api, bob, m)[0] == 404 for m in alices)
    assert download_status(api, alice, bobs) == (200, None)

    operator.post(url, {"target": alice.user_id, "action": "unquarantine"})

    assert all(download_status(api, bob, m) == (200, None) for m in alices)


def test_the_owner_form_refuses_other_targets(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    media_id = media_id_of(upload(api, alice, b"a", "text/plain"))

    page = operator.post(
        reverse("admin:media_localmedia_owner"), {"target": "alice", "action": "delete"}
    )

    assert page.status_code == 200
    assert "Give a user ID" in page.content.decode()
    assert LocalMedia.objects.filter(media_id=media_id).exists()


def test_the_owner_form_needs_the_admin(db: None) -> None:
    response = Client().get(reverse("admin:media_localmedia_owner"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
