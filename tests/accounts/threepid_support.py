"""Fixtures and helpers of the 3PID tests: a real SMTP server, a client whose requests
commit, and the steps a user takes (ask for a mail, open its link).

The test modules import the fixtures by name, which pytest then finds in the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import TestCase

from tests.conftest import MatrixTestClient, Response
from tests.mail_sinks import SMSWebhook, SMTPSink, link_in

SECRET = "s3cret.client_secret-1"


class CommittingClient(MatrixTestClient):
    """A client whose requests run their on-commit callbacks as a real commit would.

    Each test runs in a transaction that is rolled back, so on its own nothing queued
    "after commit" (the mails) would ever happen."""

    def request(self, *args: Any, **kwargs: Any) -> Response:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(*args, **kwargs)


@pytest.fixture
def smtp(settings: Any) -> Iterator[SMTPSink]:
    """A real SMTP server on loopback, and Django's SMTP backend pointed at it."""
    sink = SMTPSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.PUBLIC_BASEURL = "https://matrix.test/"
    yield sink
    sink.stop()


@pytest.fixture
def sms(settings: Any) -> Iterator[SMSWebhook]:
    webhook = SMSWebhook().start()
    settings.SMS_WEBHOOK_URL = webhook.url
    settings.PUBLIC_BASEURL = "https://matrix.test/"
    yield webhook
    webhook.stop()


@pytest.fixture
def mail_api(db: None, smtp: SMTPSink) -> CommittingClient:
    return CommittingClient()


def request_email_token(
    api: MatrixTestClient,
    endpoint: str,
    address: str,
    *,
    secret: str = SECRET,
    send_attempt: int = 1,
    **extra: Any,
) -> Response:
    """POST {endpoint}/email/requestToken, e.g. endpoint ``register``."""
    return api.post(
        f"{endpoint}/email/requestToken",
        {"client_secret": secret, "email": address, "send_attempt": send_attempt, **extra},
    )


def open_link(api: MatrixTestClient, link: str) -> Any:
    """GET the link of a mail with the test client, as a browser would; the raw
    Django response (a page or a redirect, not JSON)."""
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}/" == "https://matrix.test/", link
    return api.client.get(f"{parts.path}?{parts.query}")


def verify_email(
    api: MatrixTestClient, smtp: SMTPSink, endpoint: str, address: str, **extra: Any
) -> str:
    """Ask for a mail, open its link; the validated session's sid."""
    requested = request_email_token(api, endpoint, address, **extra)
    assert requested.status == 200, requested.body
    # Celery runs eagerly in tests: the mail was delivered before the response.
    page = open_link(api, link_in(smtp.to(address.lower())[-1]))
    assert page.status_code == 200, page.content
    assert b"Address verified" in page.content
    return str(requested.body["sid"])


def threepid_auth(
    stage: str, sid: str, session: str | None = None, *, secret: str = SECRET
) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "type": stage,
        "threepid_creds": {"sid": sid, "client_secret": secret},
    }
    if session is not None:
        auth["session"] = session
    return auth


def email_auth(sid: str, session: str | None = None, *, secret: str = SECRET) -> dict[str, Any]:
    return threepid_auth("m.login.email.identity", sid, session, secret=secret)


def msisdn_auth(sid: str, session: str | None = None, *, secret: str = SECRET) -> dict[str, Any]:
    return threepid_auth("m.login.msisdn", sid, session, secret=secret)


def request_sms_token(
    api: MatrixTestClient,
    endpoint: str,
    phone: str,
    *,
    country: str = "US",
    secret: str = SECRET,
    send_attempt: int = 1,
) -> Response:
    """POST {endpoint}/msisdn/requestToken, e.g. endpoint ``register``."""
    return api.post(
        f"{endpoint}/msisdn/requestToken",
        {
            "client_secret": secret,
            "country": country,
            "phone_number": phone,
            "send_attempt": send_attempt,
        },
    )


def code_in(sms_body: dict[str, Any]) -> str:
    """The code of an SMS as its reader sees it: the digits in its text."""
    codes = re.findall(r"\b\d{6}\b", sms_body["text"])
    assert len(codes) == 1, sms_body
    return str(codes[0])


def submit_sms_code(
    api: MatrixTestClient, requested: Response, code: str, *, secret: str = SECRET
) -> Response:
    """POST the code to the submit_url requestToken answered, as a client does."""
    parts = urlsplit(requested.body["submit_url"])
    assert f"{parts.scheme}://{parts.netloc}/" == "https://matrix.test/", parts
    return api.post(
        parts.path,
        {"sid": requested.body["sid"], "client_secret": secret, "token": code},
    )


def verify_msisdn(
    api: MatrixTestClient, sms: SMSWebhook, endpoint: str, phone: str, *, secret: str = SECRET
) -> str:
    """Ask for an SMS, type its code in; the validated session's sid."""
    requested = request_sms_token(api, endpoint, phone, secret=secret)
    assert requested.status == 200, requested.body
    # Celery runs eagerly in tests: the SMS was handed to the webhook before the response.
    submitted = submit_sms_code(api, requested, code_in(sms.bodies[-1]), secret=secret)
    assert submitted.status == 200, submitted.body
    assert submitted.body == {"success": True}
    return str(requested.body["sid"])
