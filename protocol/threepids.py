"""Third-party identifiers as the Identity Service API handles them, without Django.

Spec: content/appendices.md#3pid-types (canonical addresses), content/identity-service-api.md
("Association lookup": the ``sha256`` and ``none`` algorithms) and the grammar of
``client_secret`` and ``sid`` (data/api/identity/definitions/request_email_validation.yaml,
sid.yaml).
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

from protocol.unpadded_base64 import encode_base64_url_safe

EMAIL = "email"
MSISDN = "msisdn"
MEDIUMS = (EMAIL, MSISDN)

# Lookup algorithms (identity-service-api.md, "Algorithms"); sha256 is the one clients and
# servers must support.
LOOKUP_SHA256 = "sha256"
LOOKUP_NONE = "none"
LOOKUP_ALGORITHMS = (LOOKUP_NONE, LOOKUP_SHA256)

# client_secret and sid: "[0-9a-zA-Z.=_-]", not empty, at most 255 characters.
_OPAQUE_ID_RE = re.compile(r"[0-9a-zA-Z.=_-]{1,255}")
# user@domain: one @, no spaces, quotes or angle brackets in the local part, and a domain
# that is a host name with at least one dot.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_EMAIL_RE = re.compile(r"[^@\s<>\"(),:;\[\]\\]+@" + _LABEL + r"(?:\." + _LABEL + r")+")
MAX_EMAIL_LENGTH = 254


def is_opaque_id(value: str) -> bool:
    """Whether ``value`` follows the grammar of a ``client_secret``, ``sid`` or invite token."""
    return _OPAQUE_ID_RE.fullmatch(value) is not None


def canonical_email(address: str) -> str | None:
    """The canonical form of an email address, or None if it is not one.

    appendices.md#e-mail: ``user@domain`` with no other text, the domain in lower case, and
    the whole address case-folded ("Caseless Matching"): ``Strauß@Example.com`` is
    ``strauss@example.com``.
    """
    folded = address.strip().casefold()
    if len(folded) > MAX_EMAIL_LENGTH or _EMAIL_RE.fullmatch(folded) is None:
        return None
    return folded


def msisdn(country: str, phone_number: str) -> str | None:
    """The MSISDN (digits of the international number, appendices.md#msisdn) of a number as
    dialled from ``country``, or None if it is no valid number."""
    try:
        number = phonenumbers.parse(phone_number, country.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def lookup_hash(address: str, medium: str, pepper: str) -> str:
    """The ``sha256`` lookup form of a 3PID: URL-safe unpadded base64 of
    SHA-256(``"<address> <medium> <pepper>"``)."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return encode_base64_url_safe(digest)


def lookup_plain(address: str, medium: str) -> str:
    """The ``none`` lookup form of a 3PID: ``"<address> <medium>"``."""
    return f"{address} {medium}"


def _redact(part: str, keep: int) -> str:
    return part[:keep] + "..." if len(part) > keep else part


def redacted_email(address: str) -> str:
    """A display name for an invited address that does not give the address away
    (identity-service-api.md, store-invite: "a redacted version of address"), in the
    spec's example form: ``foo@bar.com`` -> ``f...@b...``."""
    local, _, domain = address.partition("@")
    return f"{_redact(local, 1)}@{_redact(domain, 1)}" if domain else _redact(local, 1)
