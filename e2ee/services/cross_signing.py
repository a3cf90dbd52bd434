"""Cross-signing: POST /keys/device_signing/upload and POST /keys/signatures/upload
(Client-Server API, "Cross-signing").

The master key signs the self-signing and user-signing keys; the self-signing key signs
the user's devices; the user-signing key signs other users' master keys; a user's
devices may sign the user's master key. Every signature is verified before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Device, User
from e2ee import federation_out, selectors
from e2ee.models import CrossSigningKey, DeviceKeys, KeySignature
from e2ee.services import device_lists
from protocol import e2e_keys
from protocol.errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from protocol.identifiers import parse_user_id

FIELDS = {
    e2e_keys.MASTER: "master_key",
    e2e_keys.SELF_SIGNING: "self_signing_key",
    e2e_keys.USER_SIGNING: "user_signing_key",
}


def _same(stored: CrossSigningKey | None, given: Any) -> bool:
    if stored is None or not isinstance(given, dict):
        return False
    return bool(stored.key_json == {k: v for k, v in given.items() if k != "unsigned"})


def requires_uia(user: User, given: dict[str, Any]) -> bool:
    """POST /keys/device_signing/upload needs User-Interactive Authentication unless the
    user has no master key yet, or the request only repeats the keys already stored
    (so that a retried first upload does not meet a UIA challenge)."""
    stored = selectors.cross_signing_keys(user.user_id)
    if e2e_keys.MASTER not in stored:
        return False
    return not all(_same(stored.get(usage), given[usage]) for usage in given)


def do_upload_cross_signing_keys(user: User, given: dict[str, Any]) -> None:
    """Store the keys in ``given`` (usage -> key object), each replacing the user's key
    of that usage.

    The self-signing and user-signing keys must be signed by the master key of the
    request or, without one, the stored master key (M_MISSING_PARAM when there is
    neither, M_INVALID_SIGNATURE when unsigned). Signatures of the master key by the
    user's own devices must verify. No public key may be one of the user's device IDs
    (devices and cross-signing keys share the key ID namespace): 403 M_FORBIDDEN.
    """
    user_id = user.user_id
    checked = {
        usage: e2e_keys.check_cross_signing_key(obj, user_id, usage)
        for usage, obj in given.items()
    }
    with transaction.atomic():
        stored = {
            row.usage: row
            for row in CrossSigningKey.objects.select_for_update().filter(user_id=user_id)
        }
        master = checked.get(e2e_keys.MASTER)
        master_key = (
            master.verify_key
            if master is not None
            else (
                e2e_keys.ed25519_verify_key(
                    stored[e2e_keys.MASTER].public_key, stored[e2e_keys.MASTER].public_key
                )
                if e2e_keys.MASTER in stored
                else None
            )
        )
        for usage in (e2e_keys.SELF_SIGNING, e2e_keys.USER_SIGNING):
            key = checked.get(usage)
            if key is None:
                continue
            if master_key is None:
                raise missing_param("master_key: no master signing key is available")
            if not e2e_keys.is_signed_by(key.json, user_id, master_key):
                raise e2e_keys.invalid_signature(
                    f"'{FIELDS[usage]}' is not signed by the master signing key"
                )
        if master is not None:
            _check_device_signatures_of_master(user_id, master)
        public_keys = [key.public_key for key in checked.values()]
        if Device.objects.filter(user=user, device_id__in=public_keys).exists():
            raise MatrixError("M_FORBIDDEN", "Key ID in use: a device has this ID")
        changed: set[str] = set()
        for usage, key in checked.items():
            row = stored.get(usage)
            if row is not None and row.key_json == key.json:
                continue
            if row is not None and row.public_key != key.public_key:
                # Signatures of the replaced key sign nothing current.
                KeySignature.objects.filter(
                    target_user_id=user_id, target_key_id=row.public_key
                ).delete()
            CrossSigningKey.objects.update_or_create(
                user_id=user_id,
                usage=usage,
                defaults={"owner": user, "public_key": key.public_key, "key_json": key.json},
            )
            changed.add(usage)
        if changed:
            # The user-signing key is the user's alone: no other user (nor server) is
            # shown it, so a change of it alone is news to the user only.
            public = bool(changed - {e2e_keys.USER_SIGNING})
            device_lists.do_mark_changed([user_id], owner_only=not public)
            if public:
                federation_out.queue_signing_key_update(user_id)


def _check_device_signatures_of_master(user_id: str, master: e2e_keys.CrossSigningKey) -> None:
    """A master key may carry signatures of the user's devices; those must verify."""
    own = (master.json.get("signatures") or {}).get(user_id) or {}
    devices = selectors.device_ed25519_keys(user_id)
    for key_id in own:
        algorithm, _, name = key_id.partition(":")
        if algorithm != e2e_keys.ED25519:
            continue
        public_key = devices.get(name) or (
            master.public_key if name == master.public_key else None
        )
        if public_key is None:
            continue
        if not e2e_keys.is_signed_by(
            master.json, user_id, e2e_keys.ed25519_verify_key(name, public_key)
        ):
            raise e2e_keys.invalid_signature(f"The master key's signature by {key_id} is invalid")


# --- POST /keys/signatures/upload ---------------------------------------------------------


def check_signed_objects(body: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """The request body: user ID -> key ID -> signed object."""
    if not isinstance(body, dict):
        raise bad_json("Content must be an object")
    for user_id, by_key in body.items():
        try:
            parse_user_id(user_id)
        except ValueError:
            raise invalid_param(f"Invalid user ID {user_id[:300]!r}") from None
        if not isinstance(by_key, dict) or not all(isinstance(o, dict) for o in by_key.values()):
            raise bad_json(f"'{user_id}' must map key IDs to signed objects")
    return body


@dataclass
class _Signature:
    target_user_id: str
    target_key_id: str
    signer_key_id: str
    signature: str


@dataclass
class _Signer:
    """What the uploading user signs with, loaded once per request."""

    user_id: str
    cross_signing: dict[str, CrossSigningKey]
    devices: dict[str, str]
    found: list[_Signature] = field(default_factory=list)
    # Target user -> their master key (None: they have none), read once per user.
    masters: dict[str, CrossSigningKey | None] = field(default_factory=dict)

    def master_of(self, user_id: str) -> CrossSigningKey | None:
        if user_id not in self.masters:
            keys = (
                self.cross_signing
                if user_id == self.user_id
                else selectors.cross_signing_keys(user_id)
            )
            self.masters[user_id] = keys.get(e2e_keys.MASTER)
        return self.masters[user_id]


def do_upload_signatures(user: User, body: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """POST /keys/signatures/upload: store each valid new signature by ``user``.

    Per key, what may sign it: the user's self-signing key for the user's own devices;
    the user's devices for the user's own master key; the user's user-signing key for
    another user's master key. The object must be the stored key, signatures aside.
    Returns ``failures``: user ID -> key ID -> Matrix error, for the keys refused.
    """
    signer = _Signer(
        user.user_id,
        selectors.cross_signing_keys(user.user_id),
        selectors.device_ed25519_keys(user.user_id),
    )
    failures: dict[str, dict[str, Any]] = {}
    targets: set[str] = set()
    for target_user_id, by_key in body.items():
        for key_id, signed in by_key.items():
            try:
                found = _signatures_of(signer, target_user_id, key_id, signed)
            except MatrixError as error:
                failures.setdefault(target_user_id, {})[key_id] = error.to_dict()
                continue
            signer.found.extend(found)
            if found:
                targets.add(target_user_id)
    if signer.found:
        with transaction.atomic():
            for sig in signer.found:
                KeySignature.objects.update_or_create(
                    target_user_id=sig.target_user_id,
                    target_key_id=sig.target_key_id,
                    signer_user_id=signer.user_id,
                    signer_key_id=sig.signer_key_id,
                    defaults={"signature": sig.signature},
                )
            device_lists.do_mark_changed(targets)
            _announce(signer)
    return failures


def _announce(signer: _Signer) -> None:
    """Tell the other servers of the user's own keys that gained signatures: devices
    signed by the self-signing key, the master key signed by a device. (A signature of
    another user's master key is the signer's alone.)"""
    own = [sig for sig in signer.found if sig.target_user_id == signer.user_id]
    master = signer.cross_signing.get(e2e_keys.MASTER)
    if master is not None and any(sig.target_key_id == master.public_key for sig in own):
        federation_out.queue_signing_key_update(signer.user_id)
    devices = {sig.target_key_id for sig in own} - {master.public_key if master else ""}
    federation_out.queue_device_list_update(signer.user_id, devices)


def _signatures_of(
    signer: _Signer, target_user_id: str, key_id: str, signed: dict[str, Any]
) -> list[_Signature]:
    if parse_user_id(target_user_id).domain != settings.SERVER_NAME:
        raise MatrixError(
            "M_UNRECOGNIZED", "Signing remote users' keys needs federation", status=400
        )
    own = target_user_id == signer.user_id
    stored_master = signer.master_of(target_user_id)
    if stored_master is not None and key_id == stored_master.public_key:
        _check_matches(signed, stored_master.key_json)
        if own:
            return _verified(
                signed, signer, target_user_id, key_id, candidates=dict(signer.devices)
            )
        user_signing = signer.cross_signing.get(e2e_keys.USER_SIGNING)
        if user_signing is None:
            raise not_found("You have no user-signing key")
        return _verified(
            signed,
            signer,
            target_user_id,
            key_id,
            candidates={user_signing.public_key: user_signing.public_key},
        )
    if own:
        device = DeviceKeys.objects.filter(user_id=target_user_id, device_id=key_id).first()
        if device is not None:
            _check_matches(signed, device.key_json)
            self_signing = signer.cross_signing.get(e2e_keys.SELF_SIGNING)
            if self_signing is None:
                raise not_found("You have no self-signing key")
            return _verified(
                signed,
                signer,
                target_user_id,
                key_id,
                candidates={self_signing.public_key: self_signing.public_key},
            )
    raise not_found("Unknown key, or not one you can sign")


def _check_matches(signed: dict[str, Any], stored: dict[str, Any]) -> None:
    """ "The signed JSON object must match the key previously uploaded", signatures aside."""
    if e2e_keys.without_signatures(signed) != e2e_keys.without_signatures(stored):
        raise invalid_param("The signed object does not match the stored key")


def _verified(
    signed: dict[str, Any],
    signer: _Signer,
    target_user_id: str,
    target_key_id: str,
    *,
    candidates: dict[str, str],
) -> list[_Signature]:
    """The signer's signatures in ``signed`` made by one of ``candidates`` (key name ->
    public key); M_INVALID_SIGNATURE if one does not verify or there is none."""
    signatures = e2e_keys.check_signatures_shape(signed.get("signatures"), "signed object")
    mine = signatures.get(signer.user_id) or {}
    found = []
    for signer_key_id, signature in mine.items():
        algorithm, _, name = signer_key_id.partition(":")
        public_key = candidates.get(name) if algorithm == e2e_keys.ED25519 else None
        if public_key is None:
            continue
        verify_key = e2e_keys.ed25519_verify_key(name, public_key)
        if not e2e_keys.is_signed_by(
            {**signed, "signatures": {signer.user_id: {signer_key_id: signature}}},
            signer.user_id,
            verify_key,
        ):
            raise e2e_keys.invalid_signature(f"Invalid signature by {signer_key_id}")
        found.append(_Signature(target_user_id, target_key_id, signer_key_id, signature))
    if not found:
        raise e2e_keys.invalid_signature("No signature by a key that may sign this key")
    return found
