"""End-to-end encryption key objects and their signatures, checked before a server stores them.

Client-Server API, "End-to-End Encryption": "Key algorithms", "Device keys", "One-time and
fallback keys", "Uploading keys" and "Cross-signing"; appendices.md#signing-json for the
signatures. The server never holds a private key: it checks that what a device publishes is
well formed and signed by the key it claims, so that other clients can rely on the shape.

Every refusal is a :class:`~protocol.errors.MatrixError`: ``M_INVALID_PARAM`` for a malformed,
misattributed or badly signed device or one-time key (POST /keys/upload defines no other
code), ``M_TOO_LARGE`` past the size limits. Cross-signing, whose endpoints define
``M_INVALID_SIGNATURE``, uses :func:`invalid_signature` for signatures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.signing

from protocol.canonical_json import CanonicalJSONError, encode_canonical_json
from protocol.errors import MatrixError, bad_json, invalid_param
from protocol.signing import SignatureVerifyError, VerifyKey, verify_signed_json
from protocol.unpadded_base64 import decode_base64

ED25519 = "ed25519"
CURVE25519 = "curve25519"
SIGNED_CURVE25519 = "signed_curve25519"

MASTER = "master"
SELF_SIGNING = "self_signing"
USER_SIGNING = "user_signing"
CROSS_SIGNING_USAGES = (MASTER, SELF_SIGNING, USER_SIGNING)

# Algorithm names: "ed25519", "curve25519", "signed_curve25519", namespaced future ones.
_ALGORITHM_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# The part of a one-time key ID after the algorithm: printable ASCII without ':' (clients
# use short base64 counters such as "AAAAHg").
_KEY_NAME_RE = re.compile(r"[\x21-\x39\x3b-\x7e]{1,255}")
_PUBLIC_KEY_BYTES = 32
_KEY_ALGORITHMS_OF_32_BYTES = (ED25519, CURVE25519, SIGNED_CURVE25519)

# Limits on what one device may publish; anything larger is refused as M_TOO_LARGE.
MAX_DEVICE_KEYS_BYTES = 32 * 1024
MAX_ONE_TIME_KEY_BYTES = 4 * 1024
MAX_CROSS_SIGNING_KEY_BYTES = 16 * 1024
MAX_ALGORITHMS = 32
MAX_DEVICE_KEY_ENTRIES = 32


def invalid_signature(error: str) -> MatrixError:
    return MatrixError("M_INVALID_SIGNATURE", error)


def too_large(error: str) -> MatrixError:
    return MatrixError("M_TOO_LARGE", error)


def _canonical_size(obj: Any, what: str) -> int:
    try:
        return len(encode_canonical_json(obj))
    except CanonicalJSONError as e:
        raise invalid_param(f"{what} cannot be canonicalised: {e}") from None


def split_key_id(key_id: Any, what: str = "key ID") -> tuple[str, str]:
    """``<algorithm>:<name>`` -> (algorithm, name); M_INVALID_PARAM if malformed."""
    if not isinstance(key_id, str):
        raise invalid_param(f"Invalid {what}")
    algorithm, sep, name = key_id.partition(":")
    if not sep or not _ALGORITHM_RE.fullmatch(algorithm) or not _KEY_NAME_RE.fullmatch(name):
        raise invalid_param(f"Invalid {what} {key_id[:300]!r}: expected <algorithm>:<key ID>")
    return algorithm, name


def decode_public_key(value: Any, what: str) -> bytes:
    """A 32-byte ed25519 or curve25519 public key in unpadded base64."""
    if not isinstance(value, str):
        raise invalid_param(f"{what} must be a string")
    try:
        raw = decode_base64(value)
    except ValueError:
        raise invalid_param(f"{what} is not valid base64") from None
    if len(raw) != _PUBLIC_KEY_BYTES or value.endswith("="):
        raise invalid_param(f"{what} must be 32 bytes in unpadded base64")
    return raw


def ed25519_verify_key(name: str, public_key: str) -> VerifyKey:
    """The verify key with ID ``ed25519:<name>``. Unlike server signing keys, the name here is
    a device ID or a public key (base64, with ``+`` and ``/``), so any name is allowed."""
    return VerifyKey(name, nacl.signing.VerifyKey(decode_public_key(public_key, "ed25519 key")))


def is_signed_by(obj: Mapping[str, Any], signer: str, verify_key: VerifyKey) -> bool:
    """Does ``obj`` carry a valid signature of ``signer`` (a user ID) by ``verify_key``?"""
    try:
        verify_signed_json(obj, signer, verify_key)
    except SignatureVerifyError:
        return False
    return True


def check_signatures_shape(signatures: Any, what: str) -> dict[str, dict[str, str]]:
    """``signatures``: user ID -> key ID -> signature string."""
    if not isinstance(signatures, dict):
        raise invalid_param(f"{what}.signatures must be an object")
    for signer, by_key in signatures.items():
        if not isinstance(by_key, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in by_key.items()
        ):
            raise invalid_param(f"{what}.signatures.{signer[:300]} must map key IDs to strings")
    return signatures


def without_signatures(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The signed part of a key object: everything but ``signatures`` and ``unsigned``."""
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


@dataclass(frozen=True)
class DeviceKeys:
    """Checked device keys: the object to store (without ``unsigned``) and its ed25519 key."""

    json: dict[str, Any]
    ed25519: str

    @property
    def verify_key(self) -> VerifyKey:
        return ed25519_verify_key(self.json["device_id"], self.ed25519)


_DEVICE_KEYS_REQUIRED = ("user_id", "device_id", "algorithms", "keys", "signatures")


def check_device_keys(obj: Any, user_id: str, device_id: str) -> DeviceKeys:
    """The ``device_keys`` of POST /keys/upload, for ``user_id``'s device ``device_id``.

    "Uploading keys": the object must include the device's Ed25519 key and be signed by it.
    Key names are ``<algorithm>:<device_id>`` ("Device keys" schema).
    """
    if not isinstance(obj, dict):
        raise invalid_param("'device_keys' must be an object")
    if _canonical_size(obj, "device_keys") > MAX_DEVICE_KEYS_BYTES:
        raise too_large("'device_keys' is too large")
    # M_BAD_JSON: "missing required keys" (the DeviceKeys schema's required properties).
    missing = [key for key in _DEVICE_KEYS_REQUIRED if key not in obj]
    if missing:
        raise bad_json(f"'device_keys' lacks {', '.join(missing)}")
    if obj.get("user_id") != user_id:
        raise invalid_param("'device_keys.user_id' must be your user ID")
    if obj.get("device_id") != device_id:
        raise invalid_param("'device_keys.device_id' must be the ID of this device")
    algorithms = obj.get("algorithms")
    if (
        not isinstance(algorithms, list)
        or len(algorithms) > MAX_ALGORITHMS
        or not all(isinstance(a, str) and 0 < len(a) <= 255 for a in algorithms)
    ):
        raise invalid_param("'device_keys.algorithms' must be a list of algorithm names")
    keys = obj.get("keys")
    if not isinstance(keys, dict) or not keys:
        raise invalid_param("'device_keys.keys' must be a non-empty object")
    if len(keys) > MAX_DEVICE_KEY_ENTRIES:
        raise too_large("'device_keys.keys' has too many keys")
    for key_id, value in keys.items():
        algorithm, sep, name = key_id.partition(":")
        if not sep or not _ALGORITHM_RE.fullmatch(algorithm) or name != device_id:
            raise invalid_param(
                f"Invalid device key ID {key_id[:300]!r}: expected <algorithm>:{device_id}"
            )
        if algorithm in _KEY_ALGORITHMS_OF_32_BYTES:
            decode_public_key(value, f"'device_keys.keys.{key_id}'")
        elif not isinstance(value, str) or not value:
            raise invalid_param(f"'device_keys.keys.{key_id}' must be a string")
    ed25519 = keys.get(f"{ED25519}:{device_id}")
    if ed25519 is None:
        raise invalid_param(f"'device_keys.keys' must include {ED25519}:{device_id}")
    check_signatures_shape(obj.get("signatures"), "device_keys")
    checked = DeviceKeys({k: v for k, v in obj.items() if k != "unsigned"}, ed25519)
    if not is_signed_by(checked.json, user_id, checked.verify_key):
        raise invalid_param("'device_keys' is not signed by the device's own ed25519 key")
    return checked


@dataclass(frozen=True)
class OneTimeKey:
    algorithm: str
    key_id: str
    json: Any


def check_one_time_key(
    key_id: Any,
    value: Any,
    user_id: str,
    device_key: VerifyKey | None,
    *,
    fallback: bool = False,
) -> OneTimeKey:
    """One entry of ``one_time_keys`` or ``fallback_keys``.

    A key object (``signed_curve25519``) must be signed by the device's ed25519 key
    (``device_key``; None when the device has published none, which refuses it). A
    plain string key is only accepted for algorithms that are not ``signed_*``.
    """
    what = "fallback key" if fallback else "one-time key"
    algorithm, name = split_key_id(key_id, f"{what} ID")
    if _canonical_size(value, what) > MAX_ONE_TIME_KEY_BYTES:
        raise too_large(f"{what} {key_id[:300]!r} is too large")
    if isinstance(value, str):
        if algorithm.startswith("signed_"):
            raise invalid_param(f"{what} {key_id!r} must be a signed key object")
        if algorithm in _KEY_ALGORITHMS_OF_32_BYTES:
            decode_public_key(value, f"{what} {key_id!r}")
        return OneTimeKey(algorithm, name, value)
    if not isinstance(value, dict):
        raise invalid_param(f"{what} {key_id!r} must be a string or a key object")
    if algorithm in _KEY_ALGORITHMS_OF_32_BYTES:
        decode_public_key(value.get("key"), f"{what} {key_id!r}")
    elif not isinstance(value.get("key"), str):
        raise invalid_param(f"{what} {key_id!r} needs a 'key' string")
    if "fallback" in value and not isinstance(value["fallback"], bool):
        raise invalid_param(f"'fallback' of {what} {key_id!r} must be a boolean")
    check_signatures_shape(value.get("signatures"), f"{what} {key_id!r}")
    if device_key is None:
        raise invalid_param(f"Upload the device keys before signed {what}s")
    if not is_signed_by(value, user_id, device_key):
        raise invalid_param(f"{what} {key_id!r} is not signed by the device's ed25519 key")
    return OneTimeKey(algorithm, name, {k: v for k, v in value.items() if k != "unsigned"})


@dataclass(frozen=True)
class CrossSigningKey:
    usage: str
    json: dict[str, Any]
    public_key: str

    @property
    def verify_key(self) -> VerifyKey:
        return ed25519_verify_key(self.public_key, self.public_key)

    @property
    def key_id(self) -> str:
        return f"{ED25519}:{self.public_key}"


def check_cross_signing_key(obj: Any, user_id: str, usage: str) -> CrossSigningKey:
    """A master, self-signing or user-signing key of POST /keys/device_signing/upload.

    CrossSigningKey schema: ``keys`` has exactly one property, ``ed25519:<public key>``,
    whose value is that public key. Whether it is signed as it must be is for the caller,
    who knows the master key.
    """
    what = f"'{usage}_key'" if usage != MASTER else "'master_key'"
    if not isinstance(obj, dict):
        raise invalid_param(f"{what} must be an object")
    if _canonical_size(obj, what) > MAX_CROSS_SIGNING_KEY_BYTES:
        raise too_large(f"{what} is too large")
    if obj.get("user_id") != user_id:
        raise invalid_param(f"{what}.user_id must be your user ID")
    usages = obj.get("usage")
    if (
        not isinstance(usages, list)
        or usage not in usages
        or not all(u in CROSS_SIGNING_USAGES for u in usages)
    ):
        raise invalid_param(f"{what}.usage must list {usage!r}")
    keys = obj.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise invalid_param(f"{what}.keys must have exactly one key")
    ((key_id, public_key),) = keys.items()
    algorithm, _, name = key_id.partition(":")
    if algorithm != ED25519 or name != public_key:
        raise invalid_param(f"{what}.keys must be {{'ed25519:<public key>': '<public key>'}}")
    decode_public_key(public_key, f"{what} public key")
    if "signatures" in obj:
        check_signatures_shape(obj["signatures"], what)
    return CrossSigningKey(
        usage, {k: v for k, v in obj.items() if k != "unsigned"}, str(public_key)
    )


# --- Other servers' users' keys ------------------------------------------------------------
#
# Server-Server API, "Device Management" and "End-to-End Encryption": what another server
# says of its users' keys is kept only as far as the keys' own signatures vouch for it.


def remote_device_keys(obj: Any, user_id: str, device_id: str) -> dict[str, Any] | None:
    """A remote device's keys (less ``unsigned``) if they are well formed, name the user
    and device they are given for, and are signed by the device's own ed25519 key; None
    otherwise."""
    try:
        return check_device_keys(obj, user_id, device_id).json
    except MatrixError:
        return None


def remote_cross_signing_keys(
    user_id: str,
    master: Any,
    self_signing: Any,
    stored_master: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A remote user's (master key, self-signing key), each None when absent or not
    valid: the master key must be one; the self-signing key must be signed by the master
    key given, or without one by ``stored_master``."""
    checked_master: CrossSigningKey | None = None
    if master is not None:
        try:
            checked_master = check_cross_signing_key(master, user_id, MASTER)
        except MatrixError:
            return None, None
    elif stored_master is not None:
        try:
            checked_master = check_cross_signing_key(stored_master, user_id, MASTER)
        except MatrixError:
            checked_master = None
    checked_self_signing: dict[str, Any] | None = None
    if self_signing is not None and checked_master is not None:
        try:
            key = check_cross_signing_key(self_signing, user_id, SELF_SIGNING)
        except MatrixError:
            key = None
        if key is not None and is_signed_by(key.json, user_id, checked_master.verify_key):
            checked_self_signing = key.json
    return (checked_master.json if master is not None and checked_master else None), (
        checked_self_signing
    )
