"""This server as a notary: other servers' keys as fetched and kept here, countersigned.

Spec: content/server-server-api.md, "Querying Keys Through Another Server"
(``GET /_matrix/key/v2/query/{serverName}``, ``POST /_matrix/key/v2/query``). For each
server asked about, the key responses stored for it (federation.keyring keeps each one
as the server signed it) are answered with this server's signature added. When the
stored keys are missing or not valid until ``minimum_valid_until_ts`` (now, if not
given), they are first fetched again from the server itself (never from other
notaries); if that fails, the cached responses are answered anyway, expired or not
("Notary servers can return keys for servers that are offline ... by using cached
responses"), and a server nothing is known of is left out of the answer. This server's
own keys are answered directly.

Stored keys that are missing, or no longer valid now, are fetched again at each query
that wants them (sytest's 50federation/01keys asks a notary three times in a row about
a key that expired a day ago, and expects three fetches). Keys valid now that only fall
short of a minimum further ahead are not fetched again within REFETCH_AFTER_MS of the
last fetch: queries naming far-future minimums cannot make this server ask another
again and again. A server that could not be reached is not asked again for a minute
(federation.keyring.refresh_for_notary).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Max

from accounts.clock import now_ms
from federation import keyring
from federation.keys import server_signing_key
from federation.models import RemoteServerKey
from protocol.canonical_json import encode_canonical_json
from protocol.server_keys import server_keys_json
from protocol.signing import sign_json

# Validity of this server's own key response (as GET /_matrix/key/v2/server answers).
OWN_KEYS_VALID_FOR_MS = 7 * 24 * 3600 * 1000
REFETCH_AFTER_MS = 60 * 1000
# At most this many servers per POST /_matrix/key/v2/query.
MAX_SERVERS_PER_QUERY = 100


@dataclass(frozen=True)
class ServerKeyQuery:
    """What a query asks of one server: the key IDs wanted, each with the time until
    which it should be valid (none: every key, valid until ``minimum_valid_until_ts``)."""

    server_name: str
    key_ids: Mapping[str, int] = field(default_factory=dict)
    minimum_valid_until_ts: int = 0


def own_key_response() -> dict[str, Any]:
    """This server's key response (self-signed, so signed by the notary too)."""
    return server_keys_json(
        settings.SERVER_NAME, [server_signing_key()], now_ms() + OWN_KEYS_VALID_FOR_MS
    )


def _is_fresh(rows: list[RemoteServerKey], query: ServerKeyQuery) -> bool:
    """The stored keys answer the query: each wanted key is known, and valid until the
    time asked for unless it is an old key (fetching again cannot make it valid)."""
    if not query.key_ids:
        return any(
            row.expired_ts is None and row.valid_until_ts >= query.minimum_valid_until_ts
            for row in rows
        )
    by_id = {row.key_id: row for row in rows}
    for key_id, minimum in query.key_ids.items():
        row = by_id.get(key_id)
        if row is None or (row.expired_ts is None and row.valid_until_ts < minimum):
            return False
    return True


def _valid_now(rows: list[RemoteServerKey], query: ServerKeyQuery) -> bool:
    """The stored keys would answer the query if it asked for keys valid now."""
    now = now_ms()
    return _is_fresh(
        rows,
        ServerKeyQuery(
            query.server_name,
            key_ids={key_id: now for key_id in query.key_ids},
            minimum_valid_until_ts=now,
        ),
    )


def _worth_fetching(rows: list[RemoteServerKey], query: ServerKeyQuery) -> bool:
    """Whether keys that do not answer the query are fetched again for it (see the
    module's docstring)."""
    if _is_fresh(rows, query):
        return False
    return not _valid_now(rows, query) or not _recently_fetched(query.server_name)


def _stored(server_name: str) -> list[RemoteServerKey]:
    return list(RemoteServerKey.objects.filter(server_name=server_name, key_json__isnull=False))


def _recently_fetched(server_name: str) -> bool:
    last = RemoteServerKey.objects.filter(server_name=server_name).aggregate(
        last=Max("fetched_ts")
    )["last"]
    return last is not None and now_ms() - last < REFETCH_AFTER_MS


def _responses(rows: Iterable[RemoteServerKey], key_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The distinct stored responses holding the wanted keys (all, if none named)."""
    wanted = set(key_ids)
    responses: dict[bytes, dict[str, Any]] = {}
    for row in rows:
        if wanted and row.key_id not in wanted:
            continue
        assert row.key_json is not None
        responses.setdefault(encode_canonical_json(row.key_json), row.key_json)
    return list(responses.values())


def server_keys(query: ServerKeyQuery) -> list[dict[str, Any]]:
    """The key responses for one server, each countersigned by this server."""
    if query.server_name == settings.SERVER_NAME:
        return [own_key_response()]
    rows = _stored(query.server_name)
    if _worth_fetching(rows, query) and keyring.refresh_for_notary(query.server_name):
        rows = _stored(query.server_name)
    key = server_signing_key()
    return [
        sign_json(response, settings.SERVER_NAME, key)
        for response in _responses(rows, query.key_ids)
    ]


def query_keys(queries: Iterable[ServerKeyQuery]) -> dict[str, Any]:
    """The answer of GET and POST /_matrix/key/v2/query."""
    return {"server_keys": [obj for query in queries for obj in server_keys(query)]}
