"""This server's ed25519 signing key, kept in TRELLIS_DATA_DIR in Synapse's file format."""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from federation import keyfile
from protocol.signing import SigningKey


def ensure_signing_key(path: Path | None = None) -> tuple[SigningKey, bool]:
    """Load the signing key, creating it first if there is none; return (key, created)."""
    return keyfile.ensure_signing_key(Path(path or settings.SIGNING_KEY_PATH))


@functools.cache
def server_signing_key() -> SigningKey:
    return ensure_signing_key()[0]
