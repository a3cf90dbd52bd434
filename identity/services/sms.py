"""Text messages, through the operator's SMS gateway: a webhook that takes
``POST {"to": "+<msisdn>", "text": ...}`` (TRELLIS_SMS_WEBHOOK_URL)."""

from __future__ import annotations

import json
import urllib.request

from django.conf import settings

TIMEOUT_S = 15


def deliver(msisdn: str, text: str) -> None:
    """Send one message now; raises OSError (urllib's errors are) if the gateway cannot be
    reached or does not answer 2xx, so the task retries."""
    body = json.dumps({"to": f"+{msisdn}", "text": text}).encode()
    request = urllib.request.Request(
        settings.SMS_WEBHOOK_URL,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read()
