"""The federation media answer, read: multipart/mixed (RFC 2046) with a JSON part and the
media or a Location; and file names from Content-Disposition (RFC 6266, RFC 8187)."""

from __future__ import annotations

import pytest

from protocol.media_multipart import (
    MultipartError,
    boundary_of,
    disposition_filename,
    media_answer,
    parse_multipart,
)

BOUNDARY = "6067d4698f8d40a0a794ea7d7ff2a8c5"
CONTENT_TYPE = f"multipart/mixed; boundary={BOUNDARY}"


def answer(second_part: bytes, *, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    return (
        preamble
        + f"--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n".encode()
        + f"--{BOUNDARY}\r\n".encode()
        + second_part
        + f"\r\n--{BOUNDARY}--\r\n".encode()
        + epilogue
    )


def test_the_media_part_carries_the_bytes_exactly() -> None:
    data = b"\r\n--almost a boundary\r\n\x00\xff" + b"x" * 1000 + b"\r\n"
    body = answer(
        b'Content-Type: image/png\r\nContent-Disposition: inline; filename="a.png"\r\n\r\n' + data
    )

    got = media_answer(CONTENT_TYPE, body)

    assert got.data == data
    assert got.content_type == "image/png"
    assert got.content_disposition == 'inline; filename="a.png"'
    assert got.location is None


def test_a_location_part_names_where_the_media_is() -> None:
    body = answer(b"Location: https://cdn.example/media/abc?sig=1\r\n\r\n")

    got = media_answer(CONTENT_TYPE, body)

    assert got.location == "https://cdn.example/media/abc?sig=1"
    assert got.data == b""


def test_preamble_epilogue_quoted_boundary_and_padding_are_allowed() -> None:
    body = answer(b"Content-Type: text/plain\r\n\r\nhi", preamble=b"ignored\r\n", epilogue=b"bye")
    body = body.replace(f"--{BOUNDARY}\r\nContent-Type: text".encode(),
                        f"--{BOUNDARY}  \r\nContent-Type: text".encode())  # fmt: skip

    got = media_answer(f'Multipart/Mixed; charset=utf-8; boundary="{BOUNDARY}"', body)

    assert got.data == b"hi"


def test_an_empty_media_part_and_a_part_without_headers() -> None:
    parts = parse_multipart(CONTENT_TYPE, answer(b"\r\n"))
    assert parts[1].headers == {}
    assert parts[1].body == b""


JUNK_AFTER_BOUNDARY = answer(b"\r\nx").replace(
    f"--{BOUNDARY}\r\nContent".encode(), f"--{BOUNDARY}junk\r\nContent".encode()
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", answer(b"\r\nx"), id="not multipart"),
        pytest.param("multipart/mixed", answer(b"\r\nx"), id="no boundary"),
        pytest.param('multipart/mixed; boundary=""', b"", id="empty boundary"),
        pytest.param(f"multipart/mixed; boundary={'b' * 71}", b"", id="boundary too long"),
        pytest.param(CONTENT_TYPE, b"no parts at all", id="boundary not in body"),
        pytest.param(
            CONTENT_TYPE, answer(b"\r\nx")[: -len(f"\r\n--{BOUNDARY}--\r\n")], id="not closed"
        ),
        pytest.param(CONTENT_TYPE, answer(b"Content-Type image/png\r\n\r\nx"), id="bad header"),
        pytest.param(CONTENT_TYPE, answer(b"Content-Type: image/png\r\nx"), id="no blank line"),
        pytest.param(CONTENT_TYPE, JUNK_AFTER_BOUNDARY, id="junk after boundary"),
    ],
)
def test_malformed_answers_are_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(MultipartError):
        media_answer(content_type, body)


def test_the_answer_has_exactly_two_parts_the_first_json() -> None:
    three = answer(b"\r\nx").replace(
        f"\r\n--{BOUNDARY}--".encode(), f"\r\n--{BOUNDARY}\r\n\r\ny\r\n--{BOUNDARY}--".encode()
    )
    with pytest.raises(MultipartError, match="3 parts"):
        media_answer(CONTENT_TYPE, three)
    not_json = answer(b"\r\nx").replace(b"application/json", b"text/plain")
    with pytest.raises(MultipartError, match="JSON"):
        media_answer(CONTENT_TYPE, not_json)


def test_boundary_of() -> None:
    assert boundary_of(f"multipart/mixed;boundary={BOUNDARY}") == BOUNDARY
    assert boundary_of('multipart/mixed; boundary="a b"') == "a b"


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ('inline; filename="cat.png"', "cat.png"),
        ("attachment; filename=cat.png", "cat.png"),
        ('inline; filename="with \\"quotes\\".txt"', 'with "quotes".txt'),
        ("inline; filename*=utf-8''%E2%9C%93%20ok.txt", "\u2713 ok.txt"),
        ("inline; filename=\"fallback.txt\"; filename*=UTF-8''r%C3%A9el.txt", "r\u00e9el.txt"),
        ("inline; filename*=utf-8''%FF%FE; filename=plain.txt", "plain.txt"),
        ("inline", None),
        ("", None),
    ],
)
def test_file_names_from_content_disposition(disposition: str, name: str | None) -> None:
    assert disposition_filename(disposition) == name
