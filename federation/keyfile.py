"""The signing-key file (Synapse's format), without Django: the launcher uses it too."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from protocol.signing import (
    SigningKey,
    generate_signing_key,
    read_signing_keys,
    write_signing_keys,
)


def _new_key_version() -> str:
    alphabet = string.ascii_letters + string.digits
    return "a_" + "".join(secrets.choice(alphabet) for _ in range(4))


def ensure_signing_key(path: Path, version: str | None = None) -> tuple[SigningKey, bool]:
    """Load the signing key, creating it first if there is none; return (key, created).

    A new key gets ``version`` if given (the identity service's is ``0``), else a random one.
    """
    if path.exists():
        keys = read_signing_keys(path.read_text(encoding="utf-8"))
        if not keys:
            raise ValueError(f"{path} holds no signing key")
        return keys[0], False
    key = generate_signing_key(version or _new_key_version())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary file and renamed, so a crash never leaves half a key.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(write_signing_keys([key]))
    os.replace(tmp, path)
    return key, True
