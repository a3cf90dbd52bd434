"""Thumbnails (Client-Server API, "Thumbnails"): crop and scale, never upscaled, made
once and kept, animated on request."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from media import images
from media.models import LocalMedia, Thumbnail
from media.services import thumbnails
from tests.conftest import MatrixTestClient, Persona
from tests.media.conftest import MEDIA_V1, image_bytes, image_size, media_id_of, upload

SERVER = "localhost:8008"


def thumbnail(api: MatrixTestClient, who: Persona, media_id: str, query: str) -> Any:
    return api.get(f"{MEDIA_V1}/thumbnail/{SERVER}/{media_id}?{query}", token=who.access_token)


@pytest.fixture
def photo(api: MatrixTestClient, alice: Persona) -> str:
    return media_id_of(upload(api, alice, image_bytes(800, 600, "JPEG"), "image/jpeg"))


def test_crop_gives_the_requested_size(
    api: MatrixTestClient, alice: Persona, bob: Persona, photo: str
) -> None:
    got = thumbnail(api, bob, photo, "width=96&height=96&method=crop")

    assert got.status == 200
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.headers["Content-Disposition"] == 'inline; filename="thumbnail.jpg"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert image_size(got.body) == (96, 96)


def test_scale_keeps_the_aspect_ratio(api: MatrixTestClient, alice: Persona, photo: str) -> None:
    got = thumbnail(api, alice, photo, "width=320&height=320&method=scale")

    assert got.status == 200
    assert image_size(got.body) == (320, 240)


def test_scale_is_the_default_method(api: MatrixTestClient, alice: Persona, photo: str) -> None:
    got = thumbnail(api, alice, photo, "width=100&height=75")

    assert image_size(got.body) == (100, 75)


def test_a_thumbnail_is_generated_once_and_reused(
    api: MatrixTestClient, alice: Persona, photo: str
) -> None:
    first = thumbnail(api, alice, photo, "width=50&height=40&method=crop")
    second = thumbnail(api, alice, photo, "width=50&height=40&method=crop")

    assert first.body == second.body
    assert Thumbnail.objects.filter(media__media_id=photo, width=50, height=40).count() == 1


def test_a_larger_existing_thumbnail_of_the_same_aspect_serves_a_smaller_request(
    api: MatrixTestClient, alice: Persona, photo: str
) -> None:
    thumbnail(api, alice, photo, "width=96&height=96&method=crop")

    got = thumbnail(api, alice, photo, "width=64&height=64&method=crop")

    assert image_size(got.body) == (96, 96)
    assert Thumbnail.objects.filter(media__media_id=photo).count() == 1


def test_the_original_is_returned_when_it_is_smaller_than_the_request(
    api: MatrixTestClient, alice: Persona
) -> None:
    data = image_bytes(50, 40, "PNG")
    media_id = media_id_of(upload(api, alice, data, "image/png"))

    got = thumbnail(api, alice, media_id, "width=320&height=240&method=scale")

    assert got.status == 200
    assert got.body == data
    assert got.headers["Content-Type"] == "image/png"


def test_crop_never_upscales(api: MatrixTestClient, alice: Persona) -> None:
    media_id = media_id_of(upload(api, alice, image_bytes(200, 50, "PNG"), "image/png"))

    got = thumbnail(api, alice, media_id, "width=96&height=96&method=crop")

    assert image_size(got.body) == (50, 50)


def test_transparent_images_get_png_thumbnails(api: MatrixTestClient, alice: Persona) -> None:
    data = image_bytes(300, 300, "PNG", mode="RGBA")
    media_id = media_id_of(upload(api, alice, data, "image/png"))

    got = thumbnail(api, alice, media_id, "width=32&height=32&method=crop")

    assert got.headers["Content-Type"] == "image/png"
    assert image_size(got.body) == (32, 32)


def test_animated_thumbnails_only_when_asked(api: MatrixTestClient, alice: Persona) -> None:
    gif = image_bytes(200, 200, "GIF", mode="RGB", frames=3)
    media_id = media_id_of(upload(api, alice, gif, "image/gif"))

    still = thumbnail(api, alice, media_id, "width=64&height=64&method=crop")
    moving = thumbnail(api, alice, media_id, "width=64&height=64&method=crop&animated=true")

    assert still.headers["Content-Type"] in ("image/jpeg", "image/png")
    with Image.open(io.BytesIO(still.body)) as img:
        assert not getattr(img, "is_animated", False)
    assert moving.headers["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(moving.body)) as img:
        assert img.n_frames == 3
        assert img.size == (64, 64)


def test_animated_is_ignored_for_still_images(
    api: MatrixTestClient, alice: Persona, photo: str
) -> None:
    got = thumbnail(api, alice, photo, "width=64&height=64&method=crop&animated=true")

    assert got.headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ("height=32", "M_MISSING_PARAM"),
        ("width=32", "M_MISSING_PARAM"),
        ("width=0&height=32", "M_INVALID_PARAM"),
        ("width=-5&height=32", "M_INVALID_PARAM"),
        ("width=abc&height=32", "M_INVALID_PARAM"),
        ("width=1.5&height=32", "M_INVALID_PARAM"),
        ("width=99999999999999&height=32", "M_INVALID_PARAM"),
        ("width=32&height=32&method=stretch", "M_INVALID_PARAM"),
        ("width=32&height=32&animated=yes", "M_INVALID_PARAM"),
        ("width=32&height=32&timeout_ms=soon", "M_INVALID_PARAM"),
    ],
)
def test_bad_thumbnail_parameters_are_refused(
    api: MatrixTestClient, alice: Persona, photo: str, query: str, errcode: str
) -> None:
    got = thumbnail(api, alice, photo, query)

    assert got.status == 400
    assert got.errcode == errcode
    assert Thumbnail.objects.count() == 0


def test_content_that_is_not_an_image_cannot_be_thumbnailed(
    api: MatrixTestClient, alice: Persona
) -> None:
    media_id = media_id_of(upload(api, alice, b"%PDF-1.4 not really", "application/pdf"))

    got = thumbnail(api, alice, media_id, "width=32&height=32")

    assert got.status == 400
    assert got.errcode == "M_UNKNOWN"


def test_a_lying_content_type_cannot_be_thumbnailed(api: MatrixTestClient, alice: Persona) -> None:
    media_id = media_id_of(upload(api, alice, b"<html>no image</html>", "image/png"))

    got = thumbnail(api, alice, media_id, "width=32&height=32")

    assert got.status == 400
    assert got.errcode == "M_UNKNOWN"


def test_images_too_large_to_thumbnail(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch, photo: str
) -> None:
    monkeypatch.setattr(images, "MAX_SOURCE_PIXELS", 1000)

    got = thumbnail(api, alice, photo, "width=32&height=32")

    assert got.status == 413
    assert got.errcode == "M_TOO_LARGE"


def test_unknown_media_has_no_thumbnail(api: MatrixTestClient, alice: Persona) -> None:
    got = thumbnail(api, alice, "nothingHere", "width=32&height=32")

    assert got.status == 404
    assert got.errcode == "M_NOT_FOUND"


def test_the_recommended_sizes_are_made_at_upload(
    api: MatrixTestClient, alice: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        media_id = media_id_of(upload(api, alice, image_bytes(1000, 800, "JPEG"), "image/jpeg"))

    made = set(
        Thumbnail.objects.filter(media__media_id=media_id).values_list("width", "height", "method")
    )
    assert made == {
        (32, 32, "crop"),
        (96, 96, "crop"),
        (300, 240, "scale"),
        (600, 480, "scale"),
        (750, 600, "scale"),
    }
    assert LocalMedia.objects.get(media_id=media_id).width == 1000


@pytest.mark.parametrize(
    ("size", "request_", "method", "expected"),
    [
        ((800, 600), (320, 240), "scale", (320, 240)),
        ((800, 600), (320, 320), "scale", (320, 240)),
        ((600, 800), (320, 240), "scale", (180, 240)),
        ((800, 600), (96, 96), "crop", (96, 96)),
        ((100, 50), (96, 96), "crop", (50, 50)),
        ((50, 40), (96, 96), "crop", None),
        ((50, 40), (640, 480), "scale", None),
        ((1, 10000), (32, 32), "scale", (1, 32)),
    ],
)
def test_target_sizes(
    size: tuple[int, int],
    request_: tuple[int, int],
    method: str,
    expected: tuple[int, int] | None,
) -> None:
    assert images.target_size(*size, *request_, method) == expected


def test_sizes_beyond_the_kept_ones_are_made_but_not_kept(
    api: MatrixTestClient, alice: Persona, photo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thumbnails, "MAX_KEPT_PER_MEDIA", 2)
    for width in (40, 50):
        assert thumbnail(api, alice, photo, f"width={width}&height=30&method=scale").status == 200

    third = thumbnail(api, alice, photo, "width=60&height=45&method=scale")

    assert third.status == 200
    assert image_size(third.body) == (60, 45)
    assert Thumbnail.objects.filter(media__media_id=photo).count() == 2
