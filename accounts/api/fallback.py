"""Fallback web pages for clients that cannot do a step themselves (Client-Server API,
"Fallback" under UIA, and "Login Fallback")."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from accounts.services import uia
from config.exceptions import matrix_error_response
from protocol.errors import MatrixError, missing_param, unrecognized

# The stages a fallback page can perform: a form for each.
FALLBACK_STAGES = (uia.DUMMY, uia.PASSWORD, uia.REGISTRATION_TOKEN)


def _stage_auth(auth_type: str, form: Any, session: Any) -> dict[str, Any]:
    """The ``auth`` dict the stage checker expects, from the fallback form."""
    if auth_type == uia.PASSWORD:
        return {
            "type": auth_type,
            "identifier": {
                "type": "m.id.user",
                "user": session.user.localpart if session.user else "",
            },
            "password": form.get("password", ""),
        }
    if auth_type == uia.REGISTRATION_TOKEN:
        return {"type": auth_type, "token": form.get("token", "")}
    return {"type": auth_type}


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def auth_fallback(request: HttpRequest, auth_type: str) -> HttpResponse:
    """GET/POST /_matrix/client/v3/auth/{authType}/fallback/web?session=..."""
    try:
        if auth_type not in FALLBACK_STAGES:
            raise unrecognized(f"No fallback for authentication type {auth_type!r}")
        session_id = request.GET.get("session") or request.POST.get("session")
        if not session_id:
            raise missing_param("session")
        session = uia.session_for_fallback(session_id, auth_type)
    except MatrixError as error:
        return matrix_error_response(error)
    context: dict[str, Any] = {"auth_type": auth_type, "session": session_id, "done": False}
    if request.method == "POST":
        try:
            stage_error = uia.do_complete_stage_by_fallback(
                session_id, _stage_auth(auth_type, request.POST, session)
            )
        except MatrixError as error:
            stage_error = error
        if stage_error is None:
            context["done"] = True
        else:
            context["error"] = stage_error.error
    return render(request, "accounts/uia_fallback.html", context)


@require_safe
def login_fallback(request: HttpRequest) -> HttpResponse:
    """GET /_matrix/static/client/login/"""
    return render(request, "accounts/login_fallback.html")
