"""POST /keys/query and POST /keys/claim across servers (Client-Server API, "Key
Distribution"; Server-Server API, "End-to-End Encryption").

Local users are answered from the database. Other servers' users go to their servers,
one request per server (POST /user/keys/query, /user/keys/claim), all at once, each
within the client's ``timeout``; a server that cannot be reached, or answers with an
error or something else than asked for, is named in ``failures`` (its users are then
missing from the answer, as the spec says). Except that a user whose cached device list
is fresh (e2ee.services.remote_device_lists: they share a room with a local user and
their server has been sending updates) is answered from the cache, with no request.

What comes back is checked before it is passed on or kept: only the users asked of that
server and their devices, device keys signed by the device's own key, cross-signing keys
as protocol.e2e_keys checks them. An answer for a user sharing a room with a local user
fills the cache (the whole list is asked for then, whatever the client wanted).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

from e2ee import selectors
from e2ee.models import RemoteDeviceList
from e2ee.services import keys as local_keys
from e2ee.services import remote_device_lists as cache
from federation import client
from protocol import e2e_keys
from protocol.errors import MatrixError
from protocol.identifiers import parse_user_id

logger = logging.getLogger(__name__)

USER_KEYS_QUERY = "/_matrix/federation/v1/user/keys/query"
USER_KEYS_CLAIM = "/_matrix/federation/v1/user/keys/claim"
# The spec's default for ``timeout``, and the most a client may ask to wait.
DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 60_000
# Servers asked at once.
MAX_PARALLEL = 8


def timeout_s(timeout_ms: int | None) -> float:
    """The client's ``timeout`` (milliseconds) as seconds for each server's request."""
    if timeout_ms is None:
        timeout_ms = DEFAULT_TIMEOUT_MS
    return max(1, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000


def failure(exc: client.FederationError) -> dict[str, Any]:
    """A server's entry in ``failures``: its status (503 when it could not be reached)."""
    return {"status": exc.status or 503, "message": str(exc)[:500]}


def _by_server(user_ids: Any) -> dict[str, list[str]]:
    servers: dict[str, list[str]] = defaultdict(list)
    for user_id in user_ids:
        domain = parse_user_id(user_id).domain
        if domain != settings.SERVER_NAME:
            servers[domain].append(user_id)
    return servers


def _ask_all(
    requests: Mapping[str, tuple[str, dict[str, Any]]], timeout: float
) -> dict[str, Any | client.FederationError]:
    """POST each server's (path, body) at once; server -> its JSON answer or the error.
    Only the network is used in the threads (no database)."""

    def ask(server: str) -> Any:
        path, body = requests[server]
        try:
            return client.request_json(server, "POST", path, content=body, timeout_s=timeout)
        except client.FederationError as exc:
            return exc

    if len(requests) <= 1:
        return {server: ask(server) for server in requests}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(requests))) as pool:
        futures = {server: pool.submit(ask, server) for server in requests}
        return {server: future.result() for server, future in futures.items()}


def _merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    for field, by_user in part.items():
        into.setdefault(field, {}).update(by_user)


# --- /keys/query ----------------------------------------------------------------------------


def do_query_keys(
    requester: str, wanted: Mapping[str, list[str]], timeout_ms: int | None = None
) -> dict[str, Any]:
    """POST /keys/query: ``wanted`` maps user ID -> device IDs (empty: all)."""
    answer: dict[str, Any] = {"failures": {}, **selectors.query_local_keys(requester, wanted)}
    servers = _by_server(wanted)
    if not servers:
        return answer
    remote_users = [user_id for users in servers.values() for user_id in users]
    fresh = selectors.fresh_device_lists(remote_users)
    if fresh:
        _merge(answer, selectors.cached_keys(sorted(fresh), wanted))
    shared = selectors.sharing_a_room_with_local_users([u for u in remote_users if u not in fresh])
    # When each list to be cached was last written, to keep an answer an update overtook.
    written = dict(
        RemoteDeviceList.objects.filter(user_id__in=sorted(shared)).values_list(
            "user_id", "updated_ts"
        )
    )
    requests: dict[str, tuple[str, dict[str, Any]]] = {}
    for server, users in servers.items():
        asked = {u: ([] if u in shared else list(wanted[u])) for u in users if u not in fresh}
        if asked:
            requests[server] = (USER_KEYS_QUERY, {"device_keys": asked})
    for server, got in _ask_all(requests, timeout_s(timeout_ms)).items():
        if isinstance(got, client.FederationError):
            logger.info("keys of %s's users: %s", server, got)
            answer["failures"][server] = failure(got)
            continue
        asked = requests[server][1]["device_keys"]
        snapshots = snapshots_from_keys_query(asked, got)
        if snapshots is None:
            answer["failures"][server] = {"status": 502, "message": "Invalid answer"}
            continue
        for user_id, snapshot in snapshots.items():
            if user_id in shared:
                cache.do_store_snapshot(snapshot, unless_written_since=written.get(user_id, 0))
            _merge(answer, _as_query_answer(snapshot, wanted[user_id]))
    return answer


def snapshots_from_keys_query(
    asked: Mapping[str, list[str]], answer: Any
) -> dict[str, cache.Snapshot] | None:
    """A server's /user/keys/query answer, checked: user ID -> what it says of that user
    (only the users asked, only the devices asked); None when it is not an answer."""
    if not isinstance(answer, dict):
        return None
    device_keys, masters, self_signing = (
        answer.get("device_keys"),
        answer.get("master_keys") or {},
        answer.get("self_signing_keys") or {},
    )
    if not isinstance(device_keys, dict) or not isinstance(masters, dict):
        return None
    if not isinstance(self_signing, dict):
        return None
    found: dict[str, cache.Snapshot] = {}
    for user_id, devices_asked in asked.items():
        by_device = device_keys.get(user_id)
        if not isinstance(by_device, dict):
            by_device = {}
        entries = []
        for device_id, keys in list(by_device.items())[: cache.MAX_DEVICES]:
            if devices_asked and device_id not in devices_asked:
                continue
            unsigned = keys.get("unsigned") if isinstance(keys, dict) else None
            name = unsigned.get("device_display_name") if isinstance(unsigned, dict) else None
            entry = cache.device_entry(user_id, device_id, keys, name)
            if entry is not None and entry.keys is not None:
                entries.append(entry)
        master, ssk = e2e_keys.remote_cross_signing_keys(
            user_id, masters.get(user_id), self_signing.get(user_id)
        )
        found[user_id] = cache.Snapshot(user_id, entries, master, ssk)
    return found


def _as_query_answer(snapshot: cache.Snapshot, devices: list[str]) -> dict[str, Any]:
    user_id = snapshot.user_id
    by_device: dict[str, Any] = {}
    for entry in snapshot.devices:
        if entry.keys is None or (devices and entry.device_id not in devices):
            continue
        keys = dict(entry.keys)
        if entry.display_name is not None:
            keys["unsigned"] = {"device_display_name": entry.display_name}
        by_device[entry.device_id] = keys
    part: dict[str, Any] = {"device_keys": {user_id: by_device}}
    if snapshot.master_key is not None:
        part["master_keys"] = {user_id: snapshot.master_key}
        if snapshot.self_signing_key is not None:
            part["self_signing_keys"] = {user_id: snapshot.self_signing_key}
    return part


# --- /keys/claim ----------------------------------------------------------------------------


def do_claim_keys(
    claims: Mapping[str, Mapping[str, str]], timeout_ms: int | None = None
) -> local_keys.Claimed:
    """POST /keys/claim: one key per device asked for, local ones here, the others from
    their servers."""
    local = local_keys.do_claim_local_keys(claims)
    result = local_keys.Claimed(local.one_time_keys, {})
    servers = _by_server(claims)
    if not servers:
        return result
    requests = {
        server: (USER_KEYS_CLAIM, {"one_time_keys": {u: dict(claims[u]) for u in users}})
        for server, users in servers.items()
    }
    device_keys = selectors.remote_device_ed25519_keys(
        [user_id for users in servers.values() for user_id in users]
    )
    for server, got in _ask_all(requests, timeout_s(timeout_ms)).items():
        if isinstance(got, client.FederationError):
            logger.info("one-time keys of %s's users: %s", server, got)
            result.failures[server] = failure(got)
            continue
        claimed = claimed_keys(requests[server][1]["one_time_keys"], got, device_keys)
        if claimed is None:
            result.failures[server] = {"status": 502, "message": "Invalid answer"}
            continue
        result.one_time_keys.update(claimed)
    return result


def claimed_keys(
    asked: Mapping[str, Mapping[str, str]],
    answer: Any,
    device_keys: Mapping[tuple[str, str], str],
) -> dict[str, dict[str, dict[str, Any]]] | None:
    """A server's /user/keys/claim answer, checked: only the devices asked, one key of
    the algorithm asked each; a signed key of a device whose keys are cached must be
    signed by it. None when it is not an answer."""
    if not isinstance(answer, dict) or not isinstance(answer.get("one_time_keys"), dict):
        return None
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for user_id, by_device in answer["one_time_keys"].items():
        if user_id not in asked or not isinstance(by_device, dict):
            continue
        for device_id, keys in by_device.items():
            algorithm = asked[user_id].get(device_id)
            if algorithm is None or not isinstance(keys, dict) or len(keys) != 1:
                continue
            ((key_id, key),) = keys.items()
            if not _acceptable_key(user_id, device_id, algorithm, key_id, key, device_keys):
                logger.info("dropped the claimed key %s of %s/%s", key_id, user_id, device_id)
                continue
            found.setdefault(user_id, {})[device_id] = {key_id: key}
    return found


def _acceptable_key(
    user_id: str,
    device_id: str,
    algorithm: str,
    key_id: Any,
    key: Any,
    device_keys: Mapping[tuple[str, str], str],
) -> bool:
    if not isinstance(key_id, str) or key_id.partition(":")[0] != algorithm:
        return False
    if isinstance(key, str):
        return not algorithm.startswith("signed_")
    if not isinstance(key, dict) or not isinstance(key.get("key"), str):
        return False
    ed25519 = device_keys.get((user_id, device_id))
    if ed25519 is None:
        # Nothing cached to check it against: the client checks it with the device keys.
        return True
    try:
        verify_key = e2e_keys.ed25519_verify_key(device_id, ed25519)
    except MatrixError:
        return False
    return e2e_keys.is_signed_by(key, user_id, verify_key)
