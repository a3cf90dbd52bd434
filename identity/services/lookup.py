"""Association lookup (identity-service-api.md, "Association lookup"): the pepper, and
finding the user IDs bound to hashed or plain 3PIDs."""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Any

from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from identity.models import Association, LookupPepper
from protocol.errors import MatrixError
from protocol.threepids import LOOKUP_ALGORITHMS, LOOKUP_NONE, LOOKUP_SHA256

MAX_ADDRESSES = 10_000
# Rows per IN (...) query, well inside every database's limit on bound parameters.
_CHUNK = 500


def lookup_pepper() -> str:
    """The pepper clients hash with, made on first use and kept."""
    row = LookupPepper.objects.filter(pk=1).first()
    if row is None:
        try:
            with transaction.atomic():
                row = LookupPepper.objects.create(
                    pk=1, pepper=secrets.token_urlsafe(24), created_at_ms=now_ms()
                )
        except IntegrityError:
            row = LookupPepper.objects.get(pk=1)
    return row.pepper


def hash_details() -> dict[str, Any]:
    return {"algorithms": list(LOOKUP_ALGORITHMS), "lookup_pepper": lookup_pepper()}


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def do_lookup(algorithm: str, pepper: str, addresses: list[str]) -> dict[str, str]:
    """POST /lookup: the mappings of the given addresses that are bound (others are left
    out). 400 M_INVALID_PARAM for an unknown algorithm, M_INVALID_PEPPER for a pepper
    that is not the current one."""
    if algorithm not in LOOKUP_ALGORITHMS:
        raise MatrixError("M_INVALID_PARAM", f"Unknown algorithm {algorithm!r}")
    if pepper != lookup_pepper():
        raise MatrixError("M_INVALID_PEPPER", "Unknown or invalid pepper - has it been rotated?")
    if len(addresses) > MAX_ADDRESSES:
        raise MatrixError("M_INVALID_PARAM", f"At most {MAX_ADDRESSES} addresses at once")
    if any(not isinstance(a, str) for a in addresses):
        raise MatrixError("M_INVALID_PARAM", "addresses must be strings")
    wanted = list(dict.fromkeys(addresses))
    mappings: dict[str, str] = {}
    if algorithm == LOOKUP_SHA256:
        for chunk in _chunks(wanted):
            for lookup_hash, mxid in Association.objects.filter(lookup_hash__in=chunk).values_list(
                "lookup_hash", "mxid"
            ):
                mappings[lookup_hash] = mxid
        return mappings
    assert algorithm == LOOKUP_NONE
    # "<address> <medium>": the address is everything before the last space.
    by_medium: dict[str, list[str]] = defaultdict(list)
    for query in wanted:
        address, sep, medium = query.rpartition(" ")
        if sep:
            by_medium[medium].append(address)
    for medium, medium_addresses in by_medium.items():
        for chunk in _chunks(medium_addresses):
            for address, mxid in Association.objects.filter(
                medium=medium, address__in=chunk
            ).values_list("address", "mxid"):
                mappings[f"{address} {medium}"] = mxid
    return mappings
