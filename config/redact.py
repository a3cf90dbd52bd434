"""Secrets in query strings never reach a log.

Clients may send their access token as ``?access_token=`` (deprecated but allowed by the
Client-Server API), and a few endpoints take other secrets in the query: a registration
token (``/register/m.login.registration_token/validity?token=``), a 3PID session's
``client_secret``, SSO login tokens. Every log line that can hold a request's URI passes
through :func:`redact_uri` (the access log, config/http_server.py) or
:class:`RedactQuerySecrets` (every other log record, config/settings.py's LOGGING).

A parameter counts by its decoded name, as Django decodes it: ``access%5Ftoken`` is
``access_token`` to the server, so it is redacted too.

One kind of record keeps its secrets: a mail written to the log instead of being sent
(config/mail_backend.py, only without TRELLIS_SMTP_HOST), whose link is the point of
writing it. Such a record says so with ``extra={KEEP_SECRETS: True}``.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

SECRET_QUERY_PARAMS = frozenset(
    {
        "access_token",
        "client_secret",
        "login_token",
        "logintoken",
        "password",
        "refresh_token",
        "token",
    }
)
REDACTED = "<redacted>"
# The attribute of a log record whose message is to be logged as it is.
KEEP_SECRETS = "keep_query_secrets"

# A query string inside any text: from "?" to the end of the URI it belongs to.
_QUERY = re.compile(r"\?([^\s\"'<>]*)")


def _redact_query(query: str) -> str:
    parts = query.split("&")
    changed = False
    for i, part in enumerate(parts):
        name, equals, _value = part.partition("=")
        if equals and unquote_plus(name).lower() in SECRET_QUERY_PARAMS:
            parts[i] = f"{name}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else query


def redact_uri(text: str) -> str:
    """``text`` (a URI, a request line, any log message) with the values of secret query
    parameters replaced by ``<redacted>``."""
    if "?" not in text:
        return text
    return _QUERY.sub(lambda match: "?" + _redact_query(match.group(1)), text)


class RedactQuerySecrets(logging.Filter):
    """A logging filter that redacts query-string secrets from a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, KEEP_SECRETS, False):
            return True
        message = record.getMessage()
        redacted = redact_uri(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
