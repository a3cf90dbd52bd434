"""Reading the federation media answer: ``multipart/mixed`` (RFC 2046 section 5.1).

Server-Server API, "Content Repository": GET /_matrix/federation/v1/media/download and
/thumbnail answer with exactly two parts, a JSON metadata part (``application/json``) and
either the bytes of the media (with ``Content-Type`` and ``Content-Disposition``) or a
``Location`` header naming where to fetch them. The answer comes from another server, so
the parser is strict: a boundary from the Content-Type, parts delimited by CRLF, headers
that parse, a closing delimiter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

# RFC 2046: 1 to 70 characters of bchars, not ending in a space.
_BOUNDARY_RE = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MAX_PARTS = 8
_MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not the multipart answer it claims to be."""


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class MediaAnswer:
    """The second part of the answer: the media's bytes or where to fetch them."""

    content_type: str
    content_disposition: str
    data: bytes
    location: str | None


def _params(header_value: str) -> tuple[str, dict[str, str]]:
    """The value before the first ``;`` (lower-cased) and its ``name=value`` parameters
    (names lower-cased, quoted values unquoted)."""
    head, _, rest = header_value.partition(";")
    params: dict[str, str] = {}
    for match in re.finditer(
        r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*(?:;|$)', rest
    ):
        name, value = match.group(1).lower(), match.group(2).strip()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name, value)
    return head.strip().lower(), params


def boundary_of(content_type: str) -> str:
    """The boundary of a ``multipart/mixed`` Content-Type."""
    kind, params = _params(content_type)
    if kind != "multipart/mixed":
        raise MultipartError(f"not multipart/mixed: {kind!r}")
    boundary = params.get("boundary", "")
    if not _BOUNDARY_RE.match(boundary):
        raise MultipartError("missing or malformed boundary")
    return boundary


def _part(raw: bytes) -> Part:
    if raw.startswith(b"\r\n"):
        return Part({}, raw[2:])
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator or len(head) > _MAX_HEADER_BYTES:
        raise MultipartError("a part without the blank line after its headers")
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        try:
            key = name.decode("ascii")
            text = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise MultipartError("a part header that is not text") from None
        if not colon or not _HEADER_NAME_RE.match(key):
            raise MultipartError("a malformed part header")
        headers[key.lower()] = text
    return Part(headers, body)


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a ``multipart/mixed`` body (preamble and epilogue ignored)."""
    delimiter = b"--" + boundary_of(content_type).encode("ascii")
    if body.startswith(delimiter):
        position = 0
    else:
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            raise MultipartError("no boundary in the body")
        position = found + 2
    parts: list[Part] = []
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            return parts
        end_of_line = body.find(b"\r\n", position)
        # After a delimiter: optional transport padding, then CRLF.
        if end_of_line < 0 or body[position:end_of_line].strip(b" \t"):
            raise MultipartError("a malformed boundary line")
        start = end_of_line + 2
        following = body.find(b"\r\n" + delimiter, start)
        if following < 0:
            raise MultipartError("no closing boundary")
        if len(parts) >= _MAX_PARTS:
            raise MultipartError("too many parts")
        parts.append(_part(body[start:following]))
        position = following + 2


def media_answer(content_type: str, body: bytes) -> MediaAnswer:
    """The media part of a federation media answer (the metadata part is checked to be
    JSON and otherwise ignored: it is always ``{}`` for now)."""
    parts = parse_multipart(content_type, body)
    if len(parts) != 2:
        raise MultipartError(f"{len(parts)} parts, not 2")
    metadata, media = parts
    if _params(metadata.headers.get("content-type", ""))[0] != "application/json":
        raise MultipartError("the first part is not JSON")
    location = media.headers.get("location")
    return MediaAnswer(
        content_type=media.headers.get("content-type", ""),
        content_disposition=media.headers.get("content-disposition", ""),
        data=b"" if location else media.body,
        location=location or None,
    )


def disposition_filename(content_disposition: str) -> str | None:
    """The file name a Content-Disposition gives: ``filename*`` (RFC 8187, UTF-8) if
    present and decodable, else ``filename``; None if neither."""
    _, params = _params(content_disposition)
    extended = params.get("filename*")
    if extended:
        charset, _, rest = extended.partition("'")
        _, _, encoded = rest.partition("'")
        if charset.lower() in ("utf-8", "us-ascii"):
            try:
                return unquote(encoded, encoding="utf-8", errors="strict") or None
            except UnicodeDecodeError:
                pass
    return params.get("filename") or None
