"""Two-factor login for the admin portal: TOTP and recovery codes from allauth.mfa.

allauth's own login flow does not cover the Django admin (its docs say so; their
workaround replaces the admin's login page with allauth's, which would drop the admin
login's rate limits, config/admin_site.py). So the admin keeps its login page, and the
second step uses allauth.mfa's parts: its ``Authenticator`` rows, its TOTP and recovery
code checks (``AuthenticateForm``, rate-limited per account, a code accepted once), and
its activation and deactivation flows. allauth's URLs are not routed.

Once an operator has enrolled TOTP (the page "Two-factor login", /admin/mfa/), a right
password at /admin/login/ does not log in: it leaves the account *pending* in the session
for ``PENDING_TIMEOUT_S`` and redirects to /admin/login/code/, which logs in on a right
code from the authenticator app or an unused recovery code. Secrets are stored encrypted
with a key derived from Django's SECRET_KEY (``TrellisMFAAdapter``).
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from allauth.account.internal.flows.reauthentication import reauthenticate_by_password
from allauth.mfa.adapter import DefaultMFAAdapter, get_adapter
from allauth.mfa.base.forms import AuthenticateForm
from allauth.mfa.base.internal.flows import delete_dangling_recovery_codes
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.recovery_codes.internal.flows import generate_recovery_codes
from allauth.mfa.totp.forms import ActivateTOTPForm
from allauth.mfa.totp.internal.flows import activate_totp, deactivate_totp
from allauth.mfa.utils import is_mfa_enabled
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.api.auth import client_ip
from config import ratelimit
from operators.services import audit

# How long a right password waits for its code before the login starts again.
PENDING_TIMEOUT_S = 300
_PENDING_KEY = "trellis.admin_mfa.pending"


class TrellisMFAAdapter(DefaultMFAAdapter):
    """allauth.mfa's hooks: the operator's Matrix ID in the authenticator app, and TOTP
    secrets and recovery code seeds encrypted at rest."""

    def get_totp_label(self, user: AbstractBaseUser) -> str:
        return str(getattr(user, "user_id", user.get_username()))

    def encrypt(self, text: str) -> str:
        return _fernet().encrypt(text.encode()).decode("ascii")

    def decrypt(self, encrypted_text: str) -> str:
        try:
            return _fernet().decrypt(encrypted_text.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("An MFA secret cannot be decrypted: SECRET_KEY changed?") from exc


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"trellis admin mfa\x00" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def has_totp(user: AbstractBaseUser) -> bool:
    return bool(is_mfa_enabled(user, [Authenticator.Type.TOTP]))


def start_second_step(request: HttpRequest, user: AbstractBaseUser, next_url: str) -> str:
    """The password was right for ``user``, who has TOTP: remember them as pending and
    return the URL of the code page."""
    request.session[_PENDING_KEY] = {
        "user": user.pk,
        "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[0]),
        "at": time.time(),
        "next": next_url,
    }
    return reverse("admin:mfa_authenticate")


def _pending_user(request: HttpRequest) -> tuple[Any, dict[str, Any]] | None:
    pending = request.session.get(_PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending["at"] > PENDING_TIMEOUT_S:
        request.session.pop(_PENDING_KEY, None)
        return None
    user = get_user_model().objects.filter(pk=pending["user"]).first()
    # Deactivated or demoted meanwhile: no login.
    if user is None or not user.is_active or not user.is_staff:
        request.session.pop(_PENDING_KEY, None)
        return None
    return user, pending


def authenticate_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    """GET/POST /admin/login/code/: the second step of an admin login."""
    found = _pending_user(request)
    if found is None:
        return HttpResponseRedirect(reverse("admin:login"))
    user, pending = found
    form = AuthenticateForm(user=user, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        form.save()  # marks the authenticator used (a recovery code is spent)
        request.session.pop(_PENDING_KEY, None)
        auth_login(request, user, backend=pending["backend"])
        next_url = pending["next"]
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index")
        return HttpResponseRedirect(next_url)
    context = {
        **site.each_context(request),
        "title": "Two-factor login",
        "subtitle": None,
        "form": form,
        "pending_user": user,
        REDIRECT_FIELD_NAME: pending["next"],
    }
    request.current_app = site.name
    return TemplateResponse(request, "admin/mfa/authenticate.html", context)


def _confirm_password(request: HttpRequest) -> str:
    """Every change on the page asks for the operator's password again, as allauth.mfa
    wants a recent reauthentication; limited like a login (config/admin_site.py).
    Returns an error message, or "" once the password was right."""
    user = request.user
    account = user.get_username().lower()
    if ratelimit.wait_ms("login_failed", account):
        return "Too many attempts with a wrong password. Try again later."
    if not user.check_password(request.POST.get("password", "")):
        return "Your password was not right."
    ratelimit.refund("login_failed", account)
    reauthenticate_by_password(request)
    return ""


def _audit(request: HttpRequest, action: str) -> None:
    """An operator changed their own second factor."""
    me = str(getattr(request.user, "user_id", request.user))
    audit.record(me, action, me, via="portal", ip=client_ip(request))


def security_view(request: HttpRequest, site: admin.AdminSite) -> HttpResponse:
    """GET/POST /admin/mfa/: the logged-in operator's own second factor: enrol TOTP (with
    recovery codes), see or renew the recovery codes, turn it off."""
    user = request.user
    totp = Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).first()
    action = request.POST.get("action", "") if request.method == "POST" else ""
    error = _confirm_password(request) if action else ""
    if error:
        action = ""
    shown_codes: list[str] = []
    form = None
    if totp is None:
        form = ActivateTOTPForm(user=user, data=request.POST if request.method == "POST" else None)
        if action == "activate" and form.is_valid():
            _, rc_auth = activate_totp(request, form)
            _audit(request, "mfa.enable")
            shown_codes = RecoveryCodes(rc_auth).get_unused_codes() if rc_auth else []
            form = None
            totp = Authenticator.objects.get(user_id=user.pk, type=Authenticator.Type.TOTP)
    elif action == "deactivate":
        deactivate_totp(request, totp)
        _audit(request, "mfa.disable")
        return HttpResponseRedirect(reverse("admin:mfa_security"))
    elif action == "regenerate":
        shown_codes = RecoveryCodes(generate_recovery_codes(request)).get_unused_codes()
        _audit(request, "mfa.recovery_codes")
    elif action == "show_codes":
        codes = Authenticator.objects.filter(
            user_id=user.pk, type=Authenticator.Type.RECOVERY_CODES
        ).first()
        shown_codes = RecoveryCodes(codes).get_unused_codes() if codes else []

    context: dict[str, Any] = {
        **site.each_context(request),
        "title": "Two-factor login",
        "subtitle": None,
        "totp": totp,
        "form": form,
        "error": error,
        "recovery_codes": shown_codes,
    }
    if form is not None:
        adapter = get_adapter()
        url = adapter.build_totp_url(user, form.secret)
        context.update(totp_secret=form.secret, totp_url=url, totp_svg=adapter.build_totp_svg(url))
    else:
        codes = Authenticator.objects.filter(
            user_id=user.pk, type=Authenticator.Type.RECOVERY_CODES
        ).first()
        context["unused_code_count"] = len(RecoveryCodes(codes).get_unused_codes()) if codes else 0
    request.current_app = site.name
    return TemplateResponse(request, "admin/mfa/security.html", context)


class AuthenticatorAdmin(admin.ModelAdmin):
    """Operators' second factors, as a list to read; a superuser may delete one (an
    operator who lost their phone and their recovery codes), which turns two-factor login
    off for that operator and is written to the audit log."""

    list_display = ("user", "type", "created_at", "last_used_at")
    list_filter = ("type",)
    search_fields = ("user__localpart",)
    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def delete_model(self, request: HttpRequest, obj: Authenticator) -> None:
        user = obj.user
        with transaction.atomic():
            obj.delete()
            # Recovery codes alone are no second factor: they go with the last one.
            delete_dangling_recovery_codes(user)
            audit.record(
                str(getattr(request.user, "user_id", request.user)),
                "mfa.remove",
                user.user_id,
                via="portal",
                ip=client_ip(request),
                type=obj.type,
            )

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for authenticator in queryset.select_related("user"):
            self.delete_model(request, authenticator)
