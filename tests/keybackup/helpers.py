"""Helpers shared by the key backup tests: backup configurations and key data."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import MatrixTestClient, Persona

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
AUTH_DATA = {
    "public_key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",
    "signatures": {"@alice:localhost:8008": {"ed25519:DEVICE": "c2lnbmF0dXJl"}},
}
ROOM = "!room:localhost:8008"
OTHER_ROOM = "!other:localhost:8008"


def key(
    first_message_index: int = 0,
    forwarded_count: int = 0,
    is_verified: bool = False,
    marker: str = "a",
) -> dict[str, Any]:
    """A KeyBackupData; ``marker`` tells stored keys apart in assertions."""
    return {
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": {"ephemeral": "ZXBo", "ciphertext": f"Y2lwaGVy-{marker}", "mac": "bWFj"},
    }


def create_version(
    api: MatrixTestClient, who: Persona, auth_data: dict[str, Any] | None = None
) -> str:
    response = api.post(
        "room_keys/version",
        {"algorithm": ALGORITHM, "auth_data": auth_data or AUTH_DATA},
        token=who.access_token,
    )
    assert response.status == 200, response.body
    version: str = response.body["version"]
    return version


def keys_path(version: str, room_id: str | None = None, session_id: str | None = None) -> str:
    path = "room_keys/keys"
    if room_id is not None:
        path += "/" + quote(room_id, safe="")
    if session_id is not None:
        path += "/" + quote(session_id, safe="")
    return f"{path}?version={quote(version, safe='')}"
