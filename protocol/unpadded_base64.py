"""Unpadded base64, standard and URL-safe (content/appendices.md#unpadded-base64).

Encoders never emit `=` padding; decoders accept input with or without padding and raise ValueError
on anything that is not valid base64 in the expected alphabet.
"""

from __future__ import annotations

import base64
import binascii
import re

_STANDARD_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URL_SAFE_RE = re.compile(r"[A-Za-z0-9\-_]*={0,2}")


def encode_base64(data: bytes) -> str:
    """Standard-alphabet unpadded base64."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def encode_base64_url_safe(data: bytes) -> str:
    """URL-safe-alphabet (`-`, `_`) unpadded base64."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str | bytes, pattern: re.Pattern[str], url_safe: bool) -> bytes:
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as e:
            raise ValueError("base64 input is not ASCII") from e
    if not pattern.fullmatch(text):
        raise ValueError("invalid characters in base64 input")
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("invalid base64 length")
    padded = stripped + "=" * (-len(stripped) % 4)
    if len(padded) != len(text) and len(text) != len(stripped):
        # Some, but not the right amount of, padding was given.
        raise ValueError("incorrect base64 padding")
    try:
        if url_safe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except binascii.Error as e:
        raise ValueError(f"invalid base64: {e}") from e


def decode_base64(text: str | bytes) -> bytes:
    """Decode standard-alphabet base64, padded or unpadded."""
    return _decode(text, _STANDARD_RE, url_safe=False)


def decode_base64_url_safe(text: str | bytes) -> bytes:
    """Decode URL-safe-alphabet base64, padded or unpadded."""
    return _decode(text, _URL_SAFE_RE, url_safe=True)
