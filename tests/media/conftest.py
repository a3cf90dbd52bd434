"""Media tests: a fresh media storage per test, images made with Pillow, upload helpers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import MatrixTestClient, Persona, Response

MEDIA_V3 = "/_matrix/media/v3"
MEDIA_V1 = "/_matrix/client/v1/media"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    settings.DATA_DIR = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "media": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


def image_bytes(
    width: int = 400, height: int = 300, fmt: str = "PNG", mode: str = "RGB", frames: int = 1
) -> bytes:
    out = io.BytesIO()
    images = [
        Image.new(mode, (width, height), color=(40 * i % 255, 120, 200, 128)[: len(mode)])
        for i in range(frames)
    ]
    if frames > 1:
        images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=50, loop=0)
    else:
        images[0].save(out, fmt)
    return out.getvalue()


def upload(
    api: MatrixTestClient,
    who: Persona,
    data: bytes,
    content_type: str = "image/png",
    filename: str | None = None,
) -> Response:
    path = f"{MEDIA_V3}/upload"
    if filename is not None:
        from urllib.parse import quote

        path += f"?filename={quote(filename)}"
    return api.request("POST", path, raw=data, content_type=content_type, token=who.access_token)


def media_id_of(response: Response) -> str:
    assert response.status == 200, response.body
    uri = response.body["content_uri"]
    assert uri.startswith("mxc://")
    return str(uri.rsplit("/", 1)[1])


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size
