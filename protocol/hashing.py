"""Content hashes, reference hashes, event IDs and (room v12) room IDs.

Spec: content/server-server-api.md#calculating-the-content-hash-for-an-event and #
calculating-the-reference-hash-for-an-event; content/rooms/fragments/v1-event-ids.md, #
content/rooms/v3.md (event IDs), content/rooms/fragments/v4-event-ids.md;
content/appendices.md#room-ids (v12 room IDs).

Hashing always encodes leniently (`strict=False`): whether an event's values are acceptable for its
room version is a format check made on receipt, while the hash must be computable for every event
that passed it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from typing import Any

from protocol.canonical_json import encode_canonical_json
from protocol.redaction import redacted_view
from protocol.room_versions import RoomVersion
from protocol.unpadded_base64 import decode_base64, encode_base64, encode_base64_url_safe

# Keys left out of the content hash
# (server-server-api.md#calculating-the-content-hash-for-an-event).
_CONTENT_HASH_EXCLUDED = frozenset({"unsigned", "signatures", "hashes"})


def compute_content_hash(pdu: Mapping[str, Any]) -> bytes:
    """SHA-256 over the canonical JSON of `pdu` without `unsigned`, `signatures` and `hashes`."""
    hashed = {k: v for k, v in pdu.items() if k not in _CONTENT_HASH_EXCLUDED}
    return hashlib.sha256(encode_canonical_json(hashed, strict=False)).digest()


def add_content_hash(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of `pdu` with `hashes` set to `{"sha256": <base64 content hash>}`."""
    hashed = dict(pdu)
    hashed["hashes"] = {"sha256": encode_base64(compute_content_hash(pdu))}
    return hashed


def check_content_hash(pdu: Mapping[str, Any]) -> bool:
    """Whether `pdu["hashes"]["sha256"]` matches the event's content hash.

    False when the hash is missing or malformed. A mismatch means the event must be redacted before
    use (server-server-api.md#checks-performed-on-receipt-of-a-pdu, step 3).
    """
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    claimed = hashes.get("sha256")
    if not isinstance(claimed, str):
        return False
    try:
        claimed_bytes = decode_base64(claimed)
    except ValueError:
        return False
    return hmac.compare_digest(claimed_bytes, compute_content_hash(pdu))


def redacted_signable_bytes(pdu: Mapping[str, Any], room_version: RoomVersion) -> bytes:
    """Canonical JSON of the redacted event without `signatures` and `unsigned`: the bytes
    its servers sign (server-server-api.md#signing-events) and, hashed, the reference hash
    (#calculating-the-reference-hash-for-an-event). One encoding serves both when an event
    is received."""
    redacted = redacted_view(pdu, room_version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return encode_canonical_json(redacted, strict=False)


def compute_reference_hash(
    pdu: Mapping[str, Any], room_version: RoomVersion, *, signable: bytes | None = None
) -> bytes:
    """SHA-256 of the redacted event without `signatures` and `unsigned`, as canonical JSON
    (`signable`: those bytes, when the caller has them already)."""
    if signable is None:
        signable = redacted_signable_bytes(pdu, room_version)
    return hashlib.sha256(signable).digest()


def compute_event_id(
    pdu: Mapping[str, Any], room_version: RoomVersion, *, signable: bytes | None = None
) -> str:
    """The event ID of `pdu` in `room_version`.

    v3: `$` + standard unpadded base64 of the reference hash; v4+: the URL-safe alphabet. In v1/v2
    the ID is opaque and carried in the PDU as `event_id`, which is returned (ValueError if it is
    absent). `signable`: `redacted_signable_bytes` of the PDU, when the caller has them.
    """
    event_format = room_version.event_format
    if event_format.event_id_in_pdu:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError(
                f"room version {room_version.identifier} events must carry an event_id"
            )
        return event_id
    reference_hash = compute_reference_hash(pdu, room_version, signable=signable)
    if event_format.event_id_url_safe_base64:
        return "$" + encode_base64_url_safe(reference_hash)
    return "$" + encode_base64(reference_hash)


def compute_room_id_from_create_event(
    create_pdu: Mapping[str, Any], room_version: RoomVersion
) -> str:
    """The room ID in a room version whose room ID is the create event's hash (v12).

    content/appendices.md#room-ids: the create event's event ID with `!` instead of `$`.
    """
    if not room_version.room_id_is_create_event_hash:
        raise ValueError(
            f"room version {room_version.identifier}: room ID is not the create event hash"
        )
    if create_pdu.get("type") != "m.room.create":
        raise ValueError("the room ID is derived from an m.room.create event")
    return "!" + compute_event_id(create_pdu, room_version)[1:]


_OPAQUE_ALPHABET = string.ascii_letters + string.digits


def generate_opaque_event_id(server_name: str, *, length: int = 18) -> str:
    """A fresh `$opaque:server_name` event ID for room versions 1 and 2 (v1-event-ids.md)."""
    localpart = "".join(secrets.choice(_OPAQUE_ALPHABET) for _ in range(length))
    return f"${localpart}:{server_name}"


def generate_opaque_room_id(server_name: str, *, length: int = 18) -> str:
    """A fresh `!opaque:server_name` room ID for room versions 1..11 (appendices.md#room-ids)."""
    localpart = "".join(secrets.choice(_OPAQUE_ALPHABET) for _ in range(length))
    return f"!{localpart}:{server_name}"
