"""Text messages through the operator's SMS gateway (TRELLIS_SMS_WEBHOOK_URL): a JSON POST.

Used by the homeserver's own verification codes (accounts.tasks.deliver_sms) and by the
identity service's (identity/services/sms.py); both call it from retrying Celery tasks.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def post(url: str, body: dict[str, Any], *, timeout_s: float) -> None:
    """POST ``body`` as JSON to the gateway; raises OSError (urllib's errors are) if it
    cannot be reached or does not answer 2xx, so the calling task retries."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()
