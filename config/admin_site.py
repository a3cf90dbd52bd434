"""The admin portal's site: Django's, with a login page limited like Matrix ``/login``.

Failed admin logins count against the same buckets as failed Matrix logins, since both
check the same password: every attempt takes a token from the address's ``login``
bucket, a failed one also from the account's ``login_failed`` bucket. While either is
empty the page answers 429 with Retry-After and the password is not checked at all.
The account's token is taken before the password is checked and given back if it was
right, so that many attempts sent at once cannot all pass the check of one bucket.
TRELLIS_RATELIMIT=off turns this off with every other limit.

An operator who enrolled TOTP (config/admin_mfa.py) is asked for a code after the
password; the index page is the dashboard (operators/dashboard.py).
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import login as auth_login
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.db.models.base import ModelBase
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from accounts.api.auth import client_ip
from config import admin_mfa, ratelimit


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


class TwoStepLoginView(LoginView):
    """Django's login view, except that a right password of an operator with TOTP leads
    to the code page instead of logging in."""

    def form_valid(self, form: AdminAuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if admin_mfa.has_totp(user):
            return HttpResponseRedirect(
                admin_mfa.start_second_step(self.request, user, self.get_success_url())
            )
        auth_login(self.request, user)
        return HttpResponseRedirect(self.get_success_url())


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
    index_template = "admin/index.html"

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """allauth's apps register their models here too: the account app's e-mail
        addresses are left out (Matrix accounts here have none), and operators' second
        factors get our read-only view (config/admin_mfa.py) instead of allauth's."""
        models = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        for model in models:
            label = model._meta.label_lower
            if label in ("account.emailaddress", "account.emailconfirmation"):
                continue
            if label == "mfa.authenticator":
                super().register(model, admin_mfa.AuthenticatorAdmin)
                continue
            super().register(model, admin_class, **options)

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The front page: the dashboard above Django's list of models."""
        from operators.dashboard import dashboard

        board = dashboard()
        peak = board.busiest_hour or 1
        hours = [
            {
                "start": hour.start,
                "events": hour.events,
                "percent": round(100 * hour.events / peak),
            }
            for hour in board.events_per_hour
        ]
        context = {
            "dashboard": board,
            "event_hours": hours,
            "mfa_enabled": admin_mfa.has_totp(request.user),
            **(extra_context or {}),
        }
        response: TemplateResponse = super().index(request, context)
        return response

    def get_urls(self) -> list[Any]:
        ours: list[URLPattern] = [
            path(
                "login/code/",
                never_cache(csrf_protect(lambda r: admin_mfa.authenticate_view(r, self))),
                name="mfa_authenticate",
            ),
            path(
                "mfa/",
                self.admin_view(lambda request: admin_mfa.security_view(request, self)),
                name="mfa_security",
            ),
        ]
        return ours + super().get_urls()

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = self._login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        retry_after_ms = getattr(form, "retry_after_ms", 0)
        if retry_after_ms:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(retry_after_ms / 1000))
        return response

    def _login(self, request: HttpRequest, extra_context: dict[str, Any] | None) -> HttpResponse:
        """AdminSite.login (Django 5.x) with the two-step login view."""
        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context: dict[str, Any] = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        view = TwoStepLoginView.as_view(
            extra_context=context,
            authentication_form=self.login_form,
            template_name=self.login_template or "admin/login.html",
        )
        response: HttpResponse = view(request)
        return response
