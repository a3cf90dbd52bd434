"""The identity service's long-term signing key, ``ed25519:0``, kept in the data dir.

Made on first use and never replaced: clients and homeservers check signatures of
associations and invitations with the public key GET /pubkey/ed25519:0 serves
(identity-service-api.md, "Key management").
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from federation import keyfile
from protocol.signing import SigningKey

LONG_TERM_KEY_VERSION = "0"


@functools.cache
def identity_signing_key() -> SigningKey:
    key, _ = keyfile.ensure_signing_key(
        Path(settings.IDENTITY_SIGNING_KEY_PATH), version=LONG_TERM_KEY_VERSION
    )
    return key


def identity_server_name() -> str:
    """The name the service signs as: it is served by this homeserver, at its name."""
    return str(settings.SERVER_NAME)
