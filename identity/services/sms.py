"""Text messages, through the operator's SMS gateway: a webhook that takes
``POST {"to": "+<msisdn>", "text": ...}`` (TRELLIS_SMS_WEBHOOK_URL)."""

from __future__ import annotations

from django.conf import settings

from accounts.services import sms

TIMEOUT_S = 15


def deliver(msisdn: str, text: str) -> None:
    """Send one message now; raises OSError if the gateway cannot be reached or does not
    answer 2xx, so the task retries."""
    sms.post(settings.SMS_WEBHOOK_URL, {"to": f"+{msisdn}", "text": text}, timeout_s=TIMEOUT_S)
