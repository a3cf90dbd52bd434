"""Image sizes for m.image's info, read from PNG, GIF and JPEG headers."""

from __future__ import annotations

import struct
import zlib

from trellis_cli.images import image_size


def png(width: int, height: int) -> bytes:
    """A valid greyscale PNG, made with the standard library."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_png() -> None:
    assert image_size(png(3, 2)) == (3, 2)


def test_gif() -> None:
    header = b"GIF89a" + struct.pack("<HH", 640, 480) + b"\xf7\x00\x00"

    assert image_size(header) == (640, 480)


def test_jpeg_size_comes_from_its_frame_header_after_other_segments() -> None:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 120, 160, 1) + b"\x01\x11\x00"
    jpeg = b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"

    assert image_size(jpeg) == (160, 120)


def test_other_data_has_no_size() -> None:
    assert image_size(b"plain text") is None
    assert image_size(b"\x89PNG\r\n\x1a\n" + bytes(64)) is None
    assert image_size(b"\xff\xd8\x00\x00") is None
    assert image_size(b"") is None
