"""Server keys: building and checking the object of ``GET /_matrix/key/v2/server``.

Spec: content/server-server-api.md#retrieving-server-keys and
data/api/server-server/definitions/keys.yaml. A response lists the server's current
``verify_keys`` (good for requests and events until ``valid_until_ts``) and its
``old_verify_keys`` (good for events only, each until its ``expired_ts``), and is signed by
the server itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.identifiers import is_valid_server_name
from protocol.signing import (
    ED25519,
    SignatureVerifyError,
    SigningKey,
    VerifyKey,
    decode_verify_key_bytes,
    encode_verify_key_base64,
    sign_json,
    verify_signed_json,
)

# keys.yaml, valid_until_ts: "Servers MUST use the lesser of this field and 7 days into the
# future when determining if a key is valid."
MAX_VALIDITY_MS = 7 * 24 * 3600 * 1000


class ServerKeysError(ValueError):
    """A key response is malformed, is for another server, or is not properly signed."""


@dataclass(frozen=True, slots=True)
class OldVerifyKey:
    verify_key: VerifyKey
    expired_ts: int


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """A checked key response. ``valid_until_ts`` is already capped at 7 days after the
    time it was checked at."""

    server_name: str
    verify_keys: Mapping[str, VerifyKey]
    old_verify_keys: Mapping[str, OldVerifyKey]
    valid_until_ts: int
    # The response as the server signed it (None when the keys were not read from one),
    # kept so that a notary can hand it on with its signatures intact.
    key_json: Mapping[str, Any] | None = field(default=None, compare=False)


def server_keys_json(
    server_name: str,
    signing_keys: Iterable[SigningKey],
    valid_until_ts: int,
    old_verify_keys: Mapping[str, OldVerifyKey] | None = None,
) -> dict[str, Any]:
    """This server's key response, signed by each of its current keys."""
    keys = list(signing_keys)
    obj: dict[str, Any] = {
        "server_name": server_name,
        "verify_keys": {
            key.key_id: {"key": encode_verify_key_base64(key.verify_key)} for key in keys
        },
        "old_verify_keys": {
            key_id: {"key": encode_verify_key_base64(old.verify_key), "expired_ts": old.expired_ts}
            for key_id, old in (old_verify_keys or {}).items()
        },
        "valid_until_ts": valid_until_ts,
    }
    for key in keys:
        obj = sign_json(obj, server_name, key)
    return obj


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_ed25519(key_id: object) -> bool:
    return isinstance(key_id, str) and key_id.startswith(f"{ED25519}:")


def _decode_key(key_id: object, entry: object) -> VerifyKey:
    if not isinstance(key_id, str) or not isinstance(entry, Mapping):
        raise ServerKeysError("each key must be an object under its key ID")
    key = entry.get("key")
    if not isinstance(key, str):
        raise ServerKeysError(f"{key_id}: 'key' must be a string")
    try:
        return decode_verify_key_bytes(key_id, key)
    except ValueError as e:
        raise ServerKeysError(f"{key_id}: {e}") from e


def parse_server_keys(obj: object, server_name: str, now_ms: int) -> ServerKeys:
    """Check a key response for ``server_name`` and return its keys.

    Raises ServerKeysError unless the response is an object naming ``server_name``, with
    ``verify_keys`` and ``valid_until_ts``, and carries a valid signature of ``server_name``
    by *every* ed25519 key in ``verify_keys`` (a key the server claims but did not sign
    with proves nothing). Keys of other algorithms are left out. ``old_verify_keys`` need
    not have signed.
    """
    if not isinstance(obj, Mapping):
        raise ServerKeysError("a key response must be a JSON object")
    if obj.get("server_name") != server_name or not is_valid_server_name(server_name):
        raise ServerKeysError(f"the response is not for {server_name}")
    verify_keys_json = obj.get("verify_keys")
    if not isinstance(verify_keys_json, Mapping) or not verify_keys_json:
        raise ServerKeysError("'verify_keys' must be a non-empty object")
    valid_until_ts = obj.get("valid_until_ts")
    if not _is_int(valid_until_ts):
        raise ServerKeysError("'valid_until_ts' must be an integer")
    assert isinstance(valid_until_ts, int)
    old_json = obj.get("old_verify_keys", {})
    if not isinstance(old_json, Mapping):
        raise ServerKeysError("'old_verify_keys' must be an object")

    # Keys of algorithms we do not know can be neither checked nor used: skipped, as
    # Synapse does, rather than refusing the server's ed25519 keys with them.
    verify_keys = {
        key_id: _decode_key(key_id, entry)
        for key_id, entry in verify_keys_json.items()
        if _is_ed25519(key_id)
    }
    if not verify_keys:
        raise ServerKeysError("no ed25519 key in 'verify_keys'")
    for key_id, verify_key in verify_keys.items():
        try:
            verify_signed_json(obj, server_name, verify_key)
        except SignatureVerifyError as e:
            raise ServerKeysError(f"not self-signed with {key_id}: {e}") from e

    old_verify_keys = {}
    for key_id, entry in old_json.items():
        if not _is_ed25519(key_id):
            continue
        expired_ts = entry.get("expired_ts") if isinstance(entry, Mapping) else None
        if not _is_int(expired_ts):
            raise ServerKeysError(f"{key_id}: 'expired_ts' must be an integer")
        assert isinstance(expired_ts, int)
        old_verify_keys[key_id] = OldVerifyKey(_decode_key(key_id, entry), expired_ts)

    return ServerKeys(
        server_name,
        verify_keys,
        old_verify_keys,
        min(valid_until_ts, now_ms + MAX_VALIDITY_MS),
        key_json=obj,
    )


def check_notary_signature(obj: object, notary_name: str, notary_key: VerifyKey) -> None:
    """Raise ServerKeysError unless a notary's answer (``/_matrix/key/v2/query``) about
    another server's keys carries the notary's valid signature."""
    if not isinstance(obj, Mapping):
        raise ServerKeysError("a key response must be a JSON object")
    try:
        verify_signed_json(obj, notary_name, notary_key)
    except SignatureVerifyError as e:
        raise ServerKeysError(f"not signed by the notary {notary_name}: {e}") from e
