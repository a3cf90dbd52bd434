"""ed25519 signing keys, JSON signatures, and event signatures.

Spec: content/appendices.md#signing-details, #checking-for-a-signature and
#cryptographic-key-representation; content/server-server-api.md#signing-events (events are signed
in their redacted form, so a redacted copy still verifies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from protocol.canonical_json import CanonicalJSONError, encode_canonical_json
from protocol.hashing import add_content_hash
from protocol.redaction import redacted_view
from protocol.room_versions import RoomVersion
from protocol.unpadded_base64 import decode_base64, encode_base64

ED25519 = "ed25519"
_ED25519_PUBLIC_KEY_BYTES = 32
_ED25519_SEED_BYTES = 32

# appendices.md#signing-details: key identifiers are `<algorithm>:<version>`, and the version of an
# ed25519 key consists of [a-zA-Z0-9_].
_KEY_VERSION_RE = re.compile(r"[a-zA-Z0-9_]+")

# Keys left out of the signed bytes (appendices.md#signing-details).
_UNSIGNED_KEYS = frozenset({"signatures", "unsigned"})


class SignatureVerifyError(ValueError):
    """A JSON object or event does not carry a valid signature from the expected entity."""


def is_valid_key_version(version: str) -> bool:
    return _KEY_VERSION_RE.fullmatch(version) is not None


def _check_version(version: str) -> None:
    if not is_valid_key_version(version):
        raise ValueError(f"invalid signing key version {version!r}: use [a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """An ed25519 public key with its version (the part of the key ID after `ed25519:`)."""

    version: str
    key: nacl.signing.VerifyKey

    @property
    def key_id(self) -> str:
        return f"{ED25519}:{self.version}"

    def encode(self) -> bytes:
        """The raw 32-byte public key."""
        return bytes(self.key)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise SignatureVerifyError unless `signature` is valid for `message`."""
        try:
            self.key.verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as e:
            raise SignatureVerifyError(f"bad signature for key {self.key_id}") from e


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An ed25519 private key with its version (the part of the key ID after `ed25519:`)."""

    version: str
    key: nacl.signing.SigningKey

    @property
    def key_id(self) -> str:
        return f"{ED25519}:{self.version}"

    @property
    def seed(self) -> bytes:
        """The 32-byte seed the key is derived from (what the key file stores)."""
        return bytes(self.key)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.version, self.key.verify_key)

    def sign(self, message: bytes) -> bytes:
        """The detached 64-byte signature of `message`."""
        return self.key.sign(message).signature


def generate_signing_key(version: str) -> SigningKey:
    """A new random ed25519 signing key with key ID `ed25519:<version>`."""
    _check_version(version)
    return SigningKey(version, nacl.signing.SigningKey.generate())


def signing_key_from_seed(seed: bytes, version: str) -> SigningKey:
    """The signing key derived from a 32-byte seed."""
    _check_version(version)
    if len(seed) != _ED25519_SEED_BYTES:
        raise ValueError(f"an ed25519 seed is {_ED25519_SEED_BYTES} bytes")
    return SigningKey(version, nacl.signing.SigningKey(seed))


# --- key files: one "ed25519 <version> <unpadded base64 seed>" line per key (Synapse's format) ---


def encode_signing_key_base64(signing_key: SigningKey) -> str:
    return encode_base64(signing_key.seed)


def decode_signing_key_base64(algorithm: str, version: str, seed_base64: str) -> SigningKey:
    if algorithm != ED25519:
        raise ValueError(f"unsupported signing key algorithm {algorithm!r}")
    return signing_key_from_seed(decode_base64(seed_base64), version)


def write_signing_keys(signing_keys: Iterable[SigningKey]) -> str:
    """Serialise keys in the signing-key file format, one line per key."""
    return "".join(
        f"{ED25519} {key.version} {encode_signing_key_base64(key)}\n" for key in signing_keys
    )


def read_signing_keys(text: str) -> list[SigningKey]:
    """Parse a signing-key file. Blank lines are ignored; anything malformed raises ValueError."""
    keys = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"line {line_number}: expected '<algorithm> <version> <seed>'")
        keys.append(decode_signing_key_base64(*parts))
    return keys


# --- verify keys --------------------------------------------------------------------------------


def encode_verify_key_base64(verify_key: VerifyKey) -> str:
    """The public key as unpadded base64, as in `verify_keys` of /_matrix/key/v2/server."""
    return encode_base64(verify_key.encode())


def decode_verify_key_bytes(key_id: str, key: str | bytes) -> VerifyKey:
    """The verify key for `key_id` (`ed25519:<version>`).

    `key` is either the unpadded base64 string from a key response or the raw 32 bytes.
    Raises ValueError for unsupported algorithms, bad versions or malformed keys.
    """
    algorithm, sep, version = key_id.partition(":")
    if not sep or algorithm != ED25519:
        raise ValueError(f"unsupported key ID {key_id!r}")
    _check_version(version)
    key_bytes = decode_base64(key) if isinstance(key, str) else key
    if len(key_bytes) != _ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"an ed25519 public key is {_ED25519_PUBLIC_KEY_BYTES} bytes")
    return VerifyKey(version, nacl.signing.VerifyKey(key_bytes))


# --- JSON signing -------------------------------------------------------------------------------


def _signed_bytes(obj: Mapping[str, Any]) -> bytes:
    """Canonical JSON of `obj` without `signatures` and `unsigned`.

    Encoded leniently: room versions 1..5 events may contain floats and still need verifying.
    """
    return encode_canonical_json(
        {k: v for k, v in obj.items() if k not in _UNSIGNED_KEYS}, strict=False
    )


def compute_signature(obj: Mapping[str, Any], signing_key: SigningKey) -> str:
    """The unpadded base64 signature of `obj` (excluding `signatures` and `unsigned`)."""
    return encode_base64(signing_key.sign(_signed_bytes(obj)))


def _merge_signature(
    signatures: object, server_name: str, key_id: str, signature: str
) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    if isinstance(signatures, Mapping):
        for name, by_key in signatures.items():
            if isinstance(by_key, Mapping):
                merged[name] = dict(by_key)
    merged.setdefault(server_name, {})[key_id] = signature
    return merged


def sign_json(obj: Mapping[str, Any], server_name: str, signing_key: SigningKey) -> dict[str, Any]:
    """Return a copy of `obj` with `server_name`'s signature added to its `signatures`.

    Existing signatures are kept (a signature for the same key ID is replaced) and `unsigned` is
    carried over untouched. The input is not modified.
    """
    signature = compute_signature(obj, signing_key)
    signed = dict(obj)
    signed["signatures"] = _merge_signature(
        obj.get("signatures"), server_name, signing_key.key_id, signature
    )
    return signed


def verify_signed_json(
    obj: Mapping[str, Any],
    server_name: str,
    verify_key: VerifyKey,
    *,
    message: bytes | None = None,
) -> None:
    """Raise SignatureVerifyError unless `obj` carries a valid signature by `server_name` made with
    `verify_key` (appendices.md#checking-for-a-signature). `message`: the canonical JSON of `obj`
    without `signatures` and `unsigned`, when the caller has it already."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureVerifyError("no signatures")
    by_key = signatures.get(server_name)
    if not isinstance(by_key, Mapping):
        raise SignatureVerifyError(f"not signed by {server_name}")
    signature_base64 = by_key.get(verify_key.key_id)
    if not isinstance(signature_base64, str):
        raise SignatureVerifyError(f"no signature from {server_name} with {verify_key.key_id}")
    try:
        signature = decode_base64(signature_base64)
    except ValueError as e:
        raise SignatureVerifyError("signature is not valid base64") from e
    if message is None:
        try:
            message = _signed_bytes(obj)
        except CanonicalJSONError as e:
            raise SignatureVerifyError(f"object cannot be canonicalised: {e}") from e
    verify_key.verify(message, signature)


def signature_key_ids(obj: Mapping[str, Any], server_name: str) -> list[str]:
    """The ed25519 key IDs `server_name` claims to have signed `obj` with (others are ignored)."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        return []
    by_key = signatures.get(server_name)
    if not isinstance(by_key, Mapping):
        return []
    return [key_id for key_id in by_key if key_id.startswith(f"{ED25519}:")]


# --- events -------------------------------------------------------------------------------------


def sign_event(
    pdu: Mapping[str, Any],
    server_name: str,
    signing_key: SigningKey,
    room_version: RoomVersion,
) -> dict[str, Any]:
    """Return a copy of `pdu` with `server_name`'s signature over its redacted form added.

    The content hash must already be present (see `hash_and_sign_event`).
    """
    signature = compute_signature(redacted_view(pdu, room_version), signing_key)
    signed = dict(pdu)
    signed["signatures"] = _merge_signature(
        pdu.get("signatures"), server_name, signing_key.key_id, signature
    )
    return signed


def hash_and_sign_event(
    pdu: Mapping[str, Any],
    server_name: str,
    signing_key: SigningKey,
    room_version: RoomVersion,
) -> dict[str, Any]:
    """Add the content hash, then sign: server-server-api.md#signing-events, steps 2 and 3.

    For room versions 3+ compute the event ID only afterwards, since it covers the signatures.
    """
    return sign_event(add_content_hash(pdu), server_name, signing_key, room_version)


def verify_event_signature(
    pdu: Mapping[str, Any],
    server_name: str,
    verify_key: VerifyKey,
    room_version: RoomVersion,
    *,
    signable: bytes | None = None,
) -> None:
    """Raise SignatureVerifyError unless `server_name` validly signed `pdu` with `verify_key`.

    Checks the redacted form, so it succeeds for both the full event and a redacted copy.
    `signable`: `protocol.hashing.redacted_signable_bytes` of the PDU, when the caller has them
    (the event ID is a hash of the same bytes).
    """
    if signable is None:
        verify_signed_json(redacted_view(pdu, room_version), server_name, verify_key)
        return
    # Only the signatures are read from the object; the message is given.
    verify_signed_json(pdu, server_name, verify_key, message=signable)


def _server_name_of(identifier: object) -> str:
    """The server name in `@user:server` or a v1/v2 `$event:server` (all after the first ':')."""
    if not isinstance(identifier, str):
        raise ValueError("identifier must be a string")
    _, sep, server_name = identifier.partition(":")
    if not sep or not server_name:
        raise ValueError(f"{identifier!r} has no server name")
    return server_name


def servers_required_to_sign_event(pdu: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The servers whose signatures a received event needs
    (server-server-api.md#validating-hashes-and-signatures-on-received-events).

    - the `sender`'s server, except for an invite made from a third-party invite, which any server
      may send;
    - room versions 1 and 2: also the server in the `event_id`;
    - restricted joins (v8+): also the server of `content.join_authorised_via_users_server`
      (auth rule 4.2 in v8..v11).

    Raises ValueError when a needed identifier is malformed.
    """
    content = pdu.get("content")
    if not isinstance(content, Mapping):
        content = {}
    servers: set[str] = set()
    is_member = pdu.get("type") == "m.room.member"
    membership = content.get("membership")
    if not (is_member and membership == "invite" and "third_party_invite" in content):
        servers.add(_server_name_of(pdu.get("sender")))
    if room_version.event_format.event_id_in_pdu:
        servers.add(_server_name_of(pdu.get("event_id")))
    if (
        room_version.restricted_join_rule
        and is_member
        and membership == "join"
        and "join_authorised_via_users_server" in content
    ):
        servers.add(_server_name_of(content["join_authorised_via_users_server"]))
    return servers
