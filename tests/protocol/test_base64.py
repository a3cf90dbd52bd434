"""Unpadded base64: content/appendices.md#unpadded-base64 and #url-safe-unpadded-base64."""

from __future__ import annotations

import pytest

from protocol.unpadded_base64 import (
    decode_base64,
    decode_base64_url_safe,
    encode_base64,
    encode_base64_url_safe,
)

# appendices.md#unpadded-base64 examples
SPEC_EXAMPLES = [
    (b"", ""),
    (b"f", "Zg"),
    (b"fo", "Zm8"),
    (b"foo", "Zm9v"),
    (b"foob", "Zm9vYg"),
    (b"fooba", "Zm9vYmE"),
    (b"foobar", "Zm9vYmFy"),
]


@pytest.mark.parametrize(("raw", "encoded"), SPEC_EXAMPLES)
def test_spec_examples(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert encode_base64_url_safe(raw) == encoded
    assert decode_base64(encoded) == raw
    assert decode_base64_url_safe(encoded) == raw


@pytest.mark.parametrize(("raw", "encoded"), SPEC_EXAMPLES)
def test_decoders_accept_padding(raw: bytes, encoded: str) -> None:
    padded = encoded + "=" * (-len(encoded) % 4)
    assert decode_base64(padded) == raw
    assert decode_base64_url_safe(padded) == raw


def test_alphabets_differ_in_the_last_two_characters() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(raw) == "+/+/"
    assert encode_base64_url_safe(raw) == "-_-_"
    assert decode_base64("+/+/") == raw
    assert decode_base64_url_safe("-_-_") == raw


def test_decoders_accept_bytes() -> None:
    assert decode_base64(b"Zm8") == b"fo"


@pytest.mark.parametrize(
    "garbage",
    [
        "Zm9v!",  # not in the alphabet
        "Z",  # impossible length
        "Zm9vY",  # impossible length
        "Zm8==",  # wrong amount of padding
        "Zm=8",  # padding in the middle
        "-_-_",  # URL-safe characters in standard base64
        "Zm 8",
    ],
)
def test_standard_decoder_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        decode_base64(garbage)


@pytest.mark.parametrize("garbage", ["+/+/", "Zg=x", "Z", "é"])
def test_url_safe_decoder_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        decode_base64_url_safe(garbage)


def test_non_ascii_bytes_are_rejected() -> None:
    with pytest.raises(ValueError):
        decode_base64(b"\xff\xfe")
