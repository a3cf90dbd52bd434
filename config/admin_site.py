"""The admin portal's site: Django's, with a login page limited like Matrix ``/login``.

Failed admin logins count against the same buckets as failed Matrix logins, since both
check the same password: every attempt takes a token from the address's ``login``
bucket, a failed one also from the account's ``login_failed`` bucket. While either is
empty the page answers 429 with Retry-After and the password is not checked at all.
The account's token is taken before the password is checked and given back if it was
right, so that many attempts sent at once cannot all pass the check of one bucket.
TRELLIS_RATELIMIT=off turns this off with every other limit.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from accounts.api.auth import client_ip
from config import ratelimit


class RateLimitedAuthenticationForm(AdminAuthenticationForm):
    """The admin login form; ``retry_after_ms`` is set when the attempt was refused
    unchecked because of a rate limit."""

    retry_after_ms = 0

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            # A field is missing: the form is invalid and no password is checked.
            return super().clean()
        # The key Matrix /login uses for the same account: its lower-cased localpart.
        account = str(username).lower()
        wait = ratelimit.wait_ms("login", client_ip(self.request)) or ratelimit.wait_ms(
            "login_failed", account
        )
        if wait:
            self.retry_after_ms = wait
            seconds = math.ceil(wait / 1000)
            raise ValidationError(
                "Too many login attempts. Try again in %(seconds)d second%(s)s.",
                code="ratelimited",
                params={"seconds": seconds, "s": "" if seconds == 1 else "s"},
            )
        cleaned = super().clean()
        # The password was right (a wrong one raised): this attempt does not count.
        ratelimit.refund("login_failed", account)
        return cleaned


class TrellisAdminSite(admin.AdminSite):
    """The operator portal at /admin/: titled with the server's name, "View site" going
    to the landing page at /, and the login page rate-limited like Matrix /login."""

    site_url = "/"
    index_title = "Moderation"

    @property
    def site_header(self) -> str:  # type: ignore[override]
        return f"Trellis · {settings.SERVER_NAME}"

    @property
    def site_title(self) -> str:  # type: ignore[override]
        return f"Trellis · {settings.SERVER_NAME}"

    login_form = RateLimitedAuthenticationForm

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response: HttpResponse = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        retry_after_ms = getattr(form, "retry_after_ms", 0)
        if retry_after_ms:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(retry_after_ms / 1000))
        return response
