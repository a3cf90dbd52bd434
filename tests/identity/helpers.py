"""Helpers of the identity-service tests: an identity account for a persona (through a
real OpenID token), and the validation of an address through the real mail."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core import mail

from tests.conftest import MatrixTestClient, Persona

IS = "/_matrix/identity/v2"


def openid_token(api: MatrixTestClient, who: Persona) -> dict[str, Any]:
    response = api.post(f"user/{who.user_id}/openid/request_token", {}, token=who.access_token)
    assert response.status == 200, response.body
    return dict(response.body)


def is_token(api: MatrixTestClient, who: Persona) -> str:
    """Register ``who`` with the identity service: their identity access token."""
    response = api.post(f"{IS}/account/register", openid_token(api, who))
    assert response.status == 200, response.body
    return str(response.body["token"])


def last_link(to: str) -> str:
    """The path and query of the link in the last mail to ``to``."""
    message = [m for m in mail.outbox if to in m.to][-1]
    match = re.search(r"https?://\S+", message.body)
    assert match, message.body
    parts = urlsplit(match.group(0))
    return f"{parts.path}?{parts.query}"


def request_email_token(
    api: MatrixTestClient,
    token: str,
    email: str,
    client_secret: str = "s3cret",
    send_attempt: int = 1,
    **extra: Any,
) -> Any:
    return api.post(
        f"{IS}/validate/email/requestToken",
        {"client_secret": client_secret, "email": email, "send_attempt": send_attempt, **extra},
        token=token,
    )


def validate_email(
    api: MatrixTestClient, token: str, email: str, client_secret: str = "s3cret"
) -> str:
    """Request a token for ``email`` and follow the link in the mail: the session ID."""
    response = request_email_token(api, token, email, client_secret)
    assert response.status == 200, response.body
    page = api.get(last_link(email))
    assert page.status == 200, page.body
    return str(response.body["sid"])


def bind_email(
    api: MatrixTestClient, token: str, who: Persona, email: str, client_secret: str = "s3cret"
) -> Any:
    sid = validate_email(api, token, email, client_secret)
    response = api.post(
        f"{IS}/3pid/bind",
        {"sid": sid, "client_secret": client_secret, "mxid": who.user_id},
        token=token,
    )
    assert response.status == 200, response.body
    return response.body
