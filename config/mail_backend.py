"""The mail backend of a server with no SMTP host: each mail goes to the log.

So that `make run` on a laptop can try the verification flows: the link a user would
click is in the log line, whole (the log's redaction of query-string secrets, which
would blank its client_secret and token, passes it by). Set TRELLIS_SMTP_HOST to send
real mail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from config.redact import KEEP_SECRETS

logger = logging.getLogger("trellis.mail")


class LogEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            logger.warning(
                "mail not sent (no TRELLIS_SMTP_HOST); it reads:\n"
                "To: %s\nFrom: %s\nSubject: %s\n\n%s",
                ", ".join(message.to),
                message.from_email,
                message.subject,
                message.body,
                extra={KEEP_SECRETS: True},
            )
        return len(email_messages)
