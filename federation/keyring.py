"""Other servers' verify keys: from the database, else fetched, checked and stored.

Spec: content/server-server-api.md#retrieving-server-keys. A key is fetched from its
server (``GET /_matrix/key/v2/server``, unsigned, so two servers checking each other
cannot ask each other for keys in a loop) and, if that fails, from the notaries the
operator trusts (TRELLIS_FEDERATION_KEY_NOTARIES). Nothing is stored unless the response
is signed by every key it lists. A failed lookup is remembered for a minute, so a
request naming an unreachable server or a key nobody has cannot make us fetch again and
again.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache

from accounts.clock import now_ms
from federation import client, key_cache, services
from federation.keys import server_signing_key
from protocol.server_keys import ServerKeys, ServerKeysError, check_notary_signature
from protocol.server_keys import parse_server_keys as check_server_keys
from protocol.signing import VerifyKey, signature_key_ids

logger = logging.getLogger(__name__)

FAILURE_TTL_S = 60


class KeyUnavailable(Exception):
    """No valid key with that ID could be found for that server."""


def _failure_key(server_name: str) -> str:
    return f"federation:keys-failed:{server_name}"


def _stored_key(
    server_name: str, key_id: str, valid_at_ts: int, for_requests: bool
) -> VerifyKey | None:
    stored = key_cache.stored_key(server_name, key_id)
    if stored is not None and not _usable(stored, valid_at_ts, for_requests):
        # Read a while ago: another process may have fetched it anew since.
        stored = key_cache.read_key(server_name, key_id)
    if stored is None or not _usable(stored, valid_at_ts, for_requests):
        return None
    return stored.verify_key


def _usable(stored: key_cache.StoredKey, valid_at_ts: int, for_requests: bool) -> bool:
    if stored.expired_ts is None:
        return stored.valid_until_ts >= valid_at_ts
    # Old keys sign events from before their expiry, never requests.
    return not for_requests and valid_at_ts < stored.expired_ts


def fetch_keys_directly(server_name: str) -> ServerKeys:
    """The checked answer of the server's own ``/_matrix/key/v2/server``."""
    try:
        obj = client.request_json(server_name, "GET", "/_matrix/key/v2/server", signed=False)
        return check_server_keys(obj, server_name, now_ms())
    except (client.FederationError, ServerKeysError, RecursionError) as exc:
        raise KeyUnavailable(f"keys of {server_name}: {exc}") from exc


def _fetch_keys_from_notary(server_name: str, notary: str) -> ServerKeys:
    """A notary's copy of the server's keys, signed by both (``/_matrix/key/v2/query``)."""
    path = f"/_matrix/key/v2/query/{quote(server_name, safe='')}"
    try:
        answer = client.request_json(notary, "GET", path, signed=False)
    except client.FederationError as exc:
        raise KeyUnavailable(f"notary {notary}: {exc}") from exc
    responses = answer.get("server_keys") if isinstance(answer, dict) else None
    if not isinstance(responses, list):
        raise KeyUnavailable(f"notary {notary} answered without server_keys")
    for obj in responses:
        try:
            keys = check_server_keys(obj, server_name, now_ms())
            notary_key_ids = signature_key_ids(obj, notary)
            if not notary_key_ids:
                raise ServerKeysError(f"not signed by {notary}")
            for key_id in notary_key_ids:
                notary_key = get_verify_key(
                    notary, key_id, valid_at_ts=now_ms(), use_notaries=False
                )
                check_notary_signature(obj, notary, notary_key)
            return keys
        except (ServerKeysError, KeyUnavailable, RecursionError) as exc:
            logger.info("notary %s: a bad key response for %s: %s", notary, server_name, exc)
    raise KeyUnavailable(f"notary {notary} has no valid keys for {server_name}")


def refresh_server_keys(server_name: str, *, use_notaries: bool = True) -> None:
    """Fetch, check and store the server's keys; KeyUnavailable if no source had them."""
    fetched_ts = now_ms()
    try:
        keys = fetch_keys_directly(server_name)
        services.do_store_server_keys(keys, fetched_ts=fetched_ts, fetched_from=server_name)
        logger.info("fetched the keys of %s: %s", server_name, ", ".join(keys.verify_keys))
        return
    except KeyUnavailable as exc:
        error = exc
    for notary in settings.FEDERATION_KEY_NOTARIES if use_notaries else []:
        if notary == server_name:
            continue
        try:
            keys = _fetch_keys_from_notary(server_name, notary)
        except KeyUnavailable as exc:
            logger.info("%s", exc)
            continue
        services.do_store_server_keys(keys, fetched_ts=fetched_ts, fetched_from=notary)
        logger.info("fetched the keys of %s from notary %s", server_name, notary)
        return
    raise error


def refresh_for_notary(server_name: str) -> bool:
    """Fetch the server's keys from the server itself (a notary asks no other notaries),
    unless it could not be reached within the last FAILURE_TTL_S seconds; True if fresh
    keys were stored. Only a server that gave no answer (unreachable, timed out, not
    JSON) is remembered as failing: one that answered, with an error status or with keys
    that do not check, may have published keys by the next query, and asking it again
    costs a round trip, not a timeout."""
    if cache.get(_failure_key(server_name)):
        return False
    try:
        refresh_server_keys(server_name, use_notaries=False)
    except KeyUnavailable as exc:
        logger.info("%s", exc)
        cause = exc.__cause__
        if isinstance(cause, client.FederationError) and cause.status is None:
            cache.set(_failure_key(server_name), True, FAILURE_TTL_S)
        return False
    return True


def get_verify_key(
    server_name: str,
    key_id: str,
    *,
    valid_at_ts: int,
    for_requests: bool = True,
    use_notaries: bool = True,
) -> VerifyKey:
    """The verify key ``key_id`` of ``server_name``, valid at ``valid_at_ts``.

    ``for_requests``: the key must be one of the server's current keys (old keys only
    verify events). Raises KeyUnavailable when no such key can be had; the failure is
    remembered for FAILURE_TTL_S seconds, during which the server is not asked again.
    """
    if server_name == settings.SERVER_NAME:
        own = server_signing_key()
        if own.key_id != key_id:
            raise KeyUnavailable(f"this server has no key {key_id}")
        return own.verify_key
    key = _stored_key(server_name, key_id, valid_at_ts, for_requests)
    if key is not None:
        return key
    if cache.get(_failure_key(server_name)):
        raise KeyUnavailable(f"fetching the keys of {server_name} failed recently")
    try:
        refresh_server_keys(server_name, use_notaries=use_notaries)
        key = _stored_key(server_name, key_id, valid_at_ts, for_requests)
        if key is None:
            raise KeyUnavailable(f"{server_name} has no valid key {key_id}")
    except KeyUnavailable:
        cache.set(_failure_key(server_name), True, FAILURE_TTL_S)
        raise
    return key
