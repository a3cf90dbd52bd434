"""Third-party invites: which of an `m.room.third_party_invite`'s public keys signed an
identity server's `signed` object (Client-Server API, "Third-party invites"; Server-Server
API, "Verifying the invite"). The auth rules need to know that one did (rule 4.4.1.7); a
server making the invite also asks each such key's `key_validity_url` whether the key is
still good.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.signing import decode_verify_key_bytes, signature_key_ids, verify_signed_json
from protocol.unpadded_base64 import decode_base64, decode_base64_url_safe


@dataclass(frozen=True, slots=True)
class InviteKey:
    public_key: str  # as the event has it: standard or URL-safe unpadded base64
    key_validity_url: str | None  # None: valid indefinitely (public_keys[].key_validity_url)


def invite_keys(invite_content: Mapping[str, Any]) -> list[InviteKey]:
    """The keys an invite names: `public_key` (with the top-level `key_validity_url`),
    then each of `public_keys`."""
    keys: list[InviteKey] = []
    public_key = invite_content.get("public_key")
    if isinstance(public_key, str):
        url = invite_content.get("key_validity_url")
        keys.append(InviteKey(public_key, url if isinstance(url, str) else None))
    public_keys = invite_content.get("public_keys")
    if isinstance(public_keys, list):
        for entry in public_keys:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                url = entry.get("key_validity_url")
                keys.append(InviteKey(entry["public_key"], url if isinstance(url, str) else None))
    return keys


def decode_public_key(text: str) -> bytes | None:
    """Identity servers publish keys in standard or URL-safe unpadded base64; accept both."""
    for decode in (decode_base64, decode_base64_url_safe):
        try:
            return decode(text.rstrip("="))
        except ValueError:
            continue
    return None


def keys_that_signed(
    signed: Mapping[str, Any], invite_content: Mapping[str, Any]
) -> list[InviteKey]:
    """The invite's keys with which some signature in `signed` verifies."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return []
    found: list[InviteKey] = []
    for key in invite_keys(invite_content):
        raw = decode_public_key(key.public_key)
        if raw is None:
            continue
        if _verifies(signed, signatures, raw):
            found.append(key)
    return found


def _verifies(signed: Mapping[str, Any], signatures: Mapping[str, Any], raw: bytes) -> bool:
    for server_name in signatures:
        if not isinstance(server_name, str):
            continue
        for key_id in signature_key_ids(signed, server_name):
            try:
                verify_signed_json(signed, server_name, decode_verify_key_bytes(key_id, raw))
            except ValueError:  # a malformed key, or SignatureVerifyError
                continue
            return True
    return False
