"""Regressions found by fuzzing the 3PID endpoints (schemathesis against the spec, and
hand-made hostile inputs): each was a 500, or a value PostgreSQL would refuse to store
(a 500 there, silently kept on SQLite)."""

from __future__ import annotations

import pytest

from accounts.models import ThreepidValidationSession
from accounts.services import threepids
from tests.accounts.threepid_support import SECRET, mail_api, sms, smtp
from tests.conftest import MatrixTestClient
from tests.mail_sinks import SMSWebhook, SMTPSink

__all__ = ["mail_api", "sms", "smtp"]  # fixtures

ENDPOINTS = ["register", "account/password", "account/3pid"]


@pytest.mark.parametrize("send_attempt", [2**53, -(2**53), 10**30])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_send_attempt_beyond_matrix_integers_is_invalid_param(
    mail_api: MatrixTestClient, sms: SMSWebhook, smtp: SMTPSink, endpoint: str, send_attempt: int
) -> None:
    # Was a 500: the integer reached the BIGINT column (OverflowError on SQLite,
    # "out of range" on PostgreSQL).
    for medium, address in (
        ("email", {"email": "carol@example.org"}),
        ("msisdn", {"country": "US", "phone_number": "(650) 253-0000"}),
    ):
        response = mail_api.post(
            f"{endpoint}/{medium}/requestToken",
            {"client_secret": SECRET, "send_attempt": send_attempt, **address},
        )

        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), response
    assert not ThreepidValidationSession.objects.exists()
    assert smtp.messages == []
    assert sms.bodies == []


def test_the_largest_matrix_integer_is_a_send_attempt(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    response = mail_api.post(
        "register/email/requestToken",
        {"client_secret": SECRET, "email": "carol@example.org", "send_attempt": 2**53 - 1},
    )

    assert response.status == 200, response.body
    assert ThreepidValidationSession.objects.get().send_attempt == 2**53 - 1


def test_an_address_that_lower_casing_makes_too_long_is_invalid_param(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    # "İ" lower-cases to two characters: the validator passed 316 characters that
    # became 556, more than the address column holds (a 500 on PostgreSQL).
    address = "a" * 60 + "@" + ".".join(["İ" * 20] * 12) + ".org"
    assert len(address) <= threepids.MAX_EMAIL_LENGTH < len(address.lower())

    response = mail_api.post(
        "register/email/requestToken",
        {"client_secret": SECRET, "email": address, "send_attempt": 1},
    )

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    assert not ThreepidValidationSession.objects.exists()
    assert smtp.messages == []


def test_a_long_address_that_fits_is_kept_whole(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    address = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".org"
    assert len(address) <= threepids.MAX_EMAIL_LENGTH

    response = mail_api.post(
        "register/email/requestToken",
        {"client_secret": SECRET, "email": address, "send_attempt": 1},
    )

    assert response.status == 200, response.body
    assert ThreepidValidationSession.objects.get().address == address
