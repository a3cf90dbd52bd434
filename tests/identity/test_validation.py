"""Validation sessions: POST .../requestToken, GET and POST .../submitToken,
GET /3pid/getValidated3pid, for email and phone numbers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail

from identity.models import ValidationSession
from identity.services import validation
from tests.conftest import MatrixTestClient, Persona
from tests.identity.helpers import IS, is_token, last_link, request_email_token


@pytest.fixture
def token(api: MatrixTestClient, alice: Persona) -> str:
    return is_token(api, alice)


def link_params(email: str) -> dict[str, str]:
    query = urlsplit(last_link(email)).query
    return {k: v[0] for k, v in parse_qs(query).items()}


def submit(api: MatrixTestClient, auth: str, medium: str = "email", **body: Any) -> Any:
    return api.post(f"{IS}/validate/{medium}/submitToken", body, token=auth)


def test_request_token_needs_an_identity_token(api: MatrixTestClient) -> None:
    response = request_email_token(api, "", "alice@example.org")
    assert (response.status, response.errcode) == (401, "M_UNAUTHORIZED")


@pytest.mark.parametrize("email", ["not an email", "alice@", "@example.org", "a@localhost"])
def test_not_an_email_is_400_invalid_email(api: MatrixTestClient, token: str, email: str) -> None:
    response = request_email_token(api, token, email)
    assert (response.status, response.errcode) == (400, "M_INVALID_EMAIL")
    assert mail.outbox == []


@pytest.mark.parametrize("secret", ["", "has space", "x" * 256, "slash/"])
def test_a_bad_client_secret_is_invalid_param(
    api: MatrixTestClient, token: str, secret: str
) -> None:
    response = request_email_token(api, token, "alice@example.org", client_secret=secret)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_missing_and_mistyped_parameters(api: MatrixTestClient, token: str) -> None:
    missing = api.post(
        f"{IS}/validate/email/requestToken",
        {"client_secret": "s", "email": "a@b.org"},
        token=token,
    )
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAMS")
    mistyped = request_email_token(api, token, "a@b.org", send_attempt="1")  # type: ignore[arg-type]
    assert (mistyped.status, mistyped.errcode) == (400, "M_INVALID_PARAM")


def test_the_same_send_attempt_sends_nothing_again(api: MatrixTestClient, token: str) -> None:
    first = request_email_token(api, token, "alice@example.org", send_attempt=1)
    again = request_email_token(api, token, "alice@example.org", send_attempt=1)

    assert first.body["sid"] == again.body["sid"]
    assert len(mail.outbox) == 1
    old = link_params("alice@example.org")

    newer = request_email_token(api, token, "alice@example.org", send_attempt=2)
    assert newer.body["sid"] == first.body["sid"]
    assert len(mail.outbox) == 2
    # The first mail's token is no longer the one.
    stale = submit(api, token, **old)
    assert (stale.status, stale.errcode) == (400, "M_TOKEN_INCORRECT")
    assert submit(api, token, **link_params("alice@example.org")).body == {"success": True}


def test_another_client_secret_is_another_session(api: MatrixTestClient, token: str) -> None:
    first = request_email_token(api, token, "alice@example.org", client_secret="one")
    second = request_email_token(api, token, "alice@example.org", client_secret="two")
    assert first.body["sid"] != second.body["sid"]


def test_submit_by_post(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org")
    params = link_params("alice@example.org")

    response = submit(api, token, **params)

    assert (response.status, response.body) == (200, {"success": True})
    validated = api.get(
        f"{IS}/3pid/getValidated3pid?sid={params['sid']}&client_secret=s3cret", token=token
    )
    assert validated.body["address"] == "alice@example.org"


def test_a_wrong_token_and_then_too_many(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org")
    params = link_params("alice@example.org")

    for _ in range(validation.MAX_FAILED_ATTEMPTS):
        wrong = submit(api, token, **{**params, "token": "guess"})
        assert (wrong.status, wrong.errcode) == (400, "M_TOKEN_INCORRECT")
    # Now even the right token is refused ...
    assert submit(api, token, **params).errcode == "M_TOKEN_INCORRECT"
    # ... until a new one is sent.
    request_email_token(api, token, "alice@example.org", send_attempt=2)
    assert submit(api, token, **link_params("alice@example.org")).status == 200


def test_an_expired_session(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org")
    params = link_params("alice@example.org")
    ValidationSession.objects.update(modified_at_ms=1)

    response = submit(api, token, **params)
    assert (response.status, response.errcode) == (400, "M_SESSION_EXPIRED")
    check = api.get(
        f"{IS}/3pid/getValidated3pid?sid={params['sid']}&client_secret=s3cret", token=token
    )
    assert (check.status, check.errcode) == (400, "M_SESSION_EXPIRED")


def test_an_unknown_session(api: MatrixTestClient, token: str) -> None:
    response = submit(api, token, sid="nope", client_secret="s3cret", token="x")
    assert (response.status, response.errcode) == (404, "M_NO_VALID_SESSION")
    check = api.get(f"{IS}/3pid/getValidated3pid?sid=nope&client_secret=s3cret", token=token)
    assert (check.status, check.errcode) == (404, "M_NO_VALID_SESSION")
    missing = api.get(f"{IS}/3pid/getValidated3pid?sid=nope", token=token)
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAMS")


def test_the_wrong_client_secret_finds_no_session(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org")
    params = link_params("alice@example.org")
    response = submit(api, token, **{**params, "client_secret": "other"})
    assert (response.status, response.errcode) == (404, "M_NO_VALID_SESSION")


def test_an_email_session_is_not_submitted_as_msisdn(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org")
    response = submit(api, token, "msisdn", **link_params("alice@example.org"))
    assert (response.status, response.errcode) == (404, "M_NO_VALID_SESSION")


def test_the_link_redirects_to_next_link(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org", next_link="https://client.example/done")
    page = api.get(last_link("alice@example.org"))
    assert page.status == 302
    assert page.headers["Location"] == "https://client.example/done"


def test_the_link_never_redirects_to_script(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org", next_link="javascript:alert(1)")
    page = api.get(last_link("alice@example.org"))
    assert page.status == 200


def test_a_wrong_link_is_a_matrix_error(api: MatrixTestClient, token: str) -> None:
    request_email_token(api, token, "alice@example.org")
    params = link_params("alice@example.org")
    page = api.get(
        f"{IS}/validate/email/submitToken?sid={params['sid']}&client_secret=s3cret&token=x"
    )
    assert (page.status, page.errcode) == (400, "M_TOKEN_INCORRECT")
    missing = api.get(f"{IS}/validate/email/submitToken?sid={params['sid']}")
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAMS")


def test_request_token_is_rate_limited(api: MatrixTestClient, token: str, settings: Any) -> None:
    settings.RATELIMIT_ENABLED = True
    burst = settings.RATELIMITS["identity_send_token"][1]
    for attempt in range(1, burst + 1):
        ok = request_email_token(api, token, "alice@example.org", send_attempt=attempt)
        assert ok.status == 200
    limited = request_email_token(api, token, "alice@example.org", send_attempt=burst + 1)
    assert (limited.status, limited.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert limited.body["retry_after_ms"] > 0
    assert len(mail.outbox) == burst
    # A retry of an attempt already answered sends nothing and is not limited per address.
    assert request_email_token(api, token, "alice@example.org", send_attempt=1).status == 200


# --- phone numbers ----------------------------------------------------------------------


def request_msisdn_token(
    api: MatrixTestClient, token: str, number: str = "07911 123456", country: str = "GB"
) -> Any:
    return api.post(
        f"{IS}/validate/msisdn/requestToken",
        {"client_secret": "s3cret", "country": country, "phone_number": number, "send_attempt": 1},
        token=token,
    )


def test_without_an_sms_gateway_numbers_are_refused(api: MatrixTestClient, token: str) -> None:
    response = request_msisdn_token(api, token)
    assert (response.status, response.errcode) == (400, "M_DESTINATION_REJECTED")


@pytest.fixture
def texts(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    settings.SMS_WEBHOOK_URL = "https://sms.example/send"
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "identity.services.sms.deliver", lambda msisdn, text: sent.append((msisdn, text))
    )
    return sent


@pytest.mark.parametrize(("number", "country"), [("12", "GB"), ("07911 123456", "ZZ"), ("x", "")])
def test_not_a_phone_number_is_invalid_address(
    api: MatrixTestClient, token: str, texts: list[tuple[str, str]], number: str, country: str
) -> None:
    response = request_msisdn_token(api, token, number, country)
    assert (response.status, response.errcode) == (400, "M_INVALID_ADDRESS")
    assert texts == []


def test_a_phone_number_is_validated_by_a_texted_code(
    api: MatrixTestClient, token: str, texts: list[tuple[str, str]]
) -> None:
    response = request_msisdn_token(api, token)
    assert response.status == 200, response.body
    [(msisdn, text)] = texts
    assert msisdn == "447911123456"
    code = text.rsplit(" ", 1)[-1]
    assert code.isdigit()
    assert len(code) == 6

    done = submit(
        api, token, "msisdn", sid=response.body["sid"], client_secret="s3cret", token=code
    )
    assert done.body == {"success": True}
    check = api.get(
        f"{IS}/3pid/getValidated3pid?sid={response.body['sid']}&client_secret=s3cret",
        token=token,
    )
    assert (check.body["medium"], check.body["address"]) == ("msisdn", "447911123456")


def test_the_sms_webhook_gets_json(
    api: MatrixTestClient, token: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SMS_WEBHOOK_URL = "https://sms.example/send"
    posted: list[Any] = []

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b"{}"

    def urlopen(request: Any, timeout: float) -> Answer:
        posted.append((request.full_url, request.get_method(), request.data))
        return Answer()

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    assert request_msisdn_token(api, token, "+1 650-253-0000", "").status == 200
    [(url, method, data)] = posted
    assert (url, method) == ("https://sms.example/send", "POST")
    assert b'"to": "+16502530000"' in data


def test_expired_sessions_are_purged(api: MatrixTestClient, token: str) -> None:
    from identity.tasks import purge_expired_sessions

    request_email_token(api, token, "old@example.org", client_secret="old")
    request_email_token(api, token, "new@example.org", client_secret="new")
    ValidationSession.objects.filter(address="old@example.org").update(modified_at_ms=1)

    assert purge_expired_sessions() == 1
    assert list(ValidationSession.objects.values_list("address", flat=True)) == ["new@example.org"]


def test_the_deprecated_form_encoding_still_works(api: MatrixTestClient, token: str) -> None:
    response = api.request(
        "POST",
        f"{IS}/validate/email/requestToken",
        raw=b"client_secret=s3cret&email=alice%40example.org&send_attempt=1",
        content_type="application/x-www-form-urlencoded",
        token=token,
    )
    assert response.status == 200, response.body
    params = link_params("alice@example.org")
    assert params["sid"] == response.body["sid"]
