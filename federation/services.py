"""The write path of the federation app."""

from __future__ import annotations

from django.db import transaction

from federation import key_cache
from federation.models import RemoteServerKey
from protocol.server_keys import ServerKeys
from protocol.signing import encode_verify_key_base64


def do_store_server_keys(keys: ServerKeys, *, fetched_ts: int, fetched_from: str) -> None:
    """Record a checked key response: current keys with their validity, old keys with
    their expiry. A key seen before is updated (a newer response may extend its validity
    or retire it)."""
    rows = [
        (key_id, encode_verify_key_base64(verify_key), keys.valid_until_ts, None)
        for key_id, verify_key in keys.verify_keys.items()
    ] + [
        (key_id, encode_verify_key_base64(old.verify_key), old.expired_ts, old.expired_ts)
        for key_id, old in keys.old_verify_keys.items()
        if key_id not in keys.verify_keys
    ]
    with transaction.atomic():
        for key_id, verify_key, valid_until_ts, expired_ts in rows:
            RemoteServerKey.objects.update_or_create(
                server_name=keys.server_name,
                key_id=key_id,
                defaults={
                    "verify_key": verify_key,
                    "valid_until_ts": valid_until_ts,
                    "expired_ts": expired_ts,
                    "fetched_ts": fetched_ts,
                    "fetched_from": fetched_from,
                    "key_json": dict(keys.key_json) if keys.key_json is not None else None,
                },
            )
        # What this process read of them is stale now, and so, after the commit, is what
        # a reader in between kept.
        key_cache.forget(keys.server_name)
        transaction.on_commit(lambda: key_cache.forget(keys.server_name))
