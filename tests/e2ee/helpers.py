"""Test clients' key material: what a real device would publish, made with pynacl.

A :class:`Device` holds an ed25519 identity key and makes signed device keys, one-time
keys and fallback keys; :class:`CrossSigning` holds a user's master, self-signing and
user-signing keys. Signatures are made with protocol.signing, as a client would make
them (appendices, "Signing JSON").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import nacl.signing

from protocol.signing import SigningKey, sign_json
from protocol.unpadded_base64 import encode_base64
from tests.conftest import MatrixTestClient, Persona

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


def new_key(name: str | None = None) -> SigningKey:
    """An ed25519 key named ``name``, or by its own public key (cross-signing)."""
    raw = nacl.signing.SigningKey.generate()
    return SigningKey(name or encode_base64(bytes(raw.verify_key)), raw)


def public(key: SigningKey) -> str:
    return encode_base64(key.verify_key.encode())


def curve_key() -> str:
    return encode_base64(os.urandom(32))


@dataclass
class Device:
    persona: Persona
    ed25519: SigningKey = field(init=False)
    curve25519: str = field(default_factory=curve_key)
    _counter: count[int] = field(default_factory=lambda: count(1))

    def __post_init__(self) -> None:
        self.ed25519 = new_key(self.persona.device_id)

    @property
    def user_id(self) -> str:
        return self.persona.user_id

    @property
    def device_id(self) -> str:
        return self.persona.device_id

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.ed25519)

    def device_keys(self) -> dict[str, Any]:
        return self.sign(
            {
                "user_id": self.user_id,
                "device_id": self.device_id,
                "algorithms": ALGORITHMS,
                "keys": {
                    f"curve25519:{self.device_id}": self.curve25519,
                    f"ed25519:{self.device_id}": public(self.ed25519),
                },
            }
        )

    def one_time_keys(self, n: int) -> dict[str, Any]:
        return dict(self.one_time_key() for _ in range(n))

    def one_time_key(self, *, fallback: bool = False) -> tuple[str, dict[str, Any]]:
        key_id = f"signed_curve25519:AAAA{next(self._counter):04d}"
        obj: dict[str, Any] = {"key": curve_key()}
        if fallback:
            obj["fallback"] = True
        return key_id, self.sign(obj)

    def fallback_key(self) -> dict[str, Any]:
        key_id, obj = self.one_time_key(fallback=True)
        return {key_id: obj}


@dataclass
class CrossSigning:
    user_id: str
    master: SigningKey = field(default_factory=new_key)
    self_signing: SigningKey = field(default_factory=new_key)
    user_signing: SigningKey = field(default_factory=new_key)

    def key(self, usage: str, key: SigningKey) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "usage": [usage],
            "keys": {f"ed25519:{public(key)}": public(key)},
        }

    def master_key(self) -> dict[str, Any]:
        return self.key("master", self.master)

    def self_signing_key(self) -> dict[str, Any]:
        return sign_json(self.key("self_signing", self.self_signing), self.user_id, self.master)

    def user_signing_key(self) -> dict[str, Any]:
        return sign_json(self.key("user_signing", self.user_signing), self.user_id, self.master)

    def upload_body(self) -> dict[str, Any]:
        return {
            "master_key": self.master_key(),
            "self_signing_key": self.self_signing_key(),
            "user_signing_key": self.user_signing_key(),
        }


def upload(api: MatrixTestClient, device: Device, **body: Any) -> dict[str, Any]:
    response = api.post("keys/upload", body, token=device.persona.access_token)
    assert response.status == 200, response.body
    result: dict[str, Any] = response.body
    return result


def publish(api: MatrixTestClient, persona: Persona, one_time_keys: int = 0) -> Device:
    """A device with its identity keys (and ``one_time_keys`` keys) published."""
    device = Device(persona)
    upload(
        api,
        device,
        device_keys=device.device_keys(),
        one_time_keys=device.one_time_keys(one_time_keys),
    )
    return device


def query(api: MatrixTestClient, who: Persona, *users: str) -> dict[str, Any]:
    response = api.post(
        "keys/query", {"device_keys": {u: [] for u in users}}, token=who.access_token
    )
    assert response.status == 200, response.body
    result: dict[str, Any] = response.body
    return result


def claim(
    api: MatrixTestClient, who: Persona, wanted: dict[str, dict[str, str]]
) -> dict[str, Any]:
    response = api.post("keys/claim", {"one_time_keys": wanted}, token=who.access_token)
    assert response.status == 200, response.body
    result: dict[str, Any] = response.body
    return result
