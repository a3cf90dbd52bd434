"""POST .../requestToken and the token's way back (the mailed link, submit_url): input
checks, idempotency, wrong and expired tokens, rate limits, phone numbers.

Client-Server API "Adding Account Administrative Contact Information", the
requestToken endpoints of registration.yaml, password_management.yaml and
administrative_contact.yaml; the submit_url semantics of the Identity Service API's
POST /validate/{medium}/submitToken (v1.18 error codes).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db.models import F

from accounts.models import ThreepidValidationSession, UserThreepid
from accounts.services import threepids
from tests.accounts.helpers import password_auth
from tests.accounts.threepid_support import (
    SECRET,
    link_in,
    mail_api,
    open_link,
    request_email_token,
    sms,
    smtp,
)
from tests.conftest import MatrixTestClient, Persona
from tests.mail_sinks import SMSWebhook, SMTPSink

__all__ = ["mail_api", "sms", "smtp"]  # fixtures

SUBMIT = "/_trellis/client/threepid/submit_token"


def assert_nothing_stored(smtp: SMTPSink) -> None:
    assert not ThreepidValidationSession.objects.exists()
    assert smtp.messages == []


def token_of(link: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}


# --- Input -------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["not-an-email", "a@", "@example.org", "a b@example.org"])
def test_an_address_that_is_not_an_email_is_invalid_param(
    mail_api: MatrixTestClient, smtp: SMTPSink, address: str
) -> None:
    response = request_email_token(mail_api, "register", address)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert_nothing_stored(smtp)


@pytest.mark.parametrize("secret", ["", "with space", "ü", "x" * 256, "a/b"])
def test_client_secret_grammar(mail_api: MatrixTestClient, smtp: SMTPSink, secret: str) -> None:
    response = request_email_token(mail_api, "register", "carol@example.org", secret=secret)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert_nothing_stored(smtp)


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"client_secret": SECRET, "email": "c@example.org", "send_attempt": "1"}, "M_BAD_JSON"),
        ({"client_secret": SECRET, "email": "c@example.org", "send_attempt": 1.5}, "M_BAD_JSON"),
        ({"client_secret": SECRET, "email": "c@example.org"}, "M_MISSING_PARAM"),
        ({"client_secret": SECRET, "send_attempt": 1}, "M_MISSING_PARAM"),
        ({"email": "c@example.org", "send_attempt": 1}, "M_MISSING_PARAM"),
        ({"client_secret": 5, "email": "c@example.org", "send_attempt": 1}, "M_BAD_JSON"),
    ],
)
def test_malformed_requests(
    mail_api: MatrixTestClient, smtp: SMTPSink, body: dict[str, Any], errcode: str
) -> None:
    response = mail_api.post("register/email/requestToken", body)

    assert response.status == 400
    assert response.errcode == errcode
    assert_nothing_stored(smtp)


def test_the_address_is_lower_cased(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    response = request_email_token(mail_api, "register", "  Carol@EXAMPLE.org ")

    assert response.status == 200, response.body
    assert ThreepidValidationSession.objects.get().address == "carol@example.org"
    assert [m["To"] for m in smtp.messages] == ["carol@example.org"]


def test_r0_prefix(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    response = mail_api.post(
        "/_matrix/client/r0/register/email/requestToken",
        {"client_secret": SECRET, "email": "carol@example.org", "send_attempt": 1},
    )

    assert response.status == 200, response.body
    assert len(smtp.messages) == 1


# --- Whose address ---------------------------------------------------------------------


@pytest.fixture
def owned(mail_api: MatrixTestClient, smtp: SMTPSink) -> Persona:
    """alice, with alice@example.org on her account (added the way a client does)."""
    alice = mail_api.register("alice", "pw-alice")
    sid = request_email_token(mail_api, "account/3pid", "alice@example.org").body["sid"]
    open_link(mail_api, link_in(smtp.messages[-1]))
    body = {"client_secret": SECRET, "sid": sid}
    first = mail_api.post("account/3pid/add", body, token=alice.access_token)
    done = mail_api.post(
        "account/3pid/add",
        {**body, "auth": password_auth(alice, first.body["session"])},
        token=alice.access_token,
    )
    assert done.status == 200, done.body
    smtp.messages.clear()
    return alice


@pytest.mark.parametrize("endpoint", ["register", "account/3pid"])
def test_an_address_in_use_cannot_be_registered_or_added(
    mail_api: MatrixTestClient, smtp: SMTPSink, owned: Persona, endpoint: str
) -> None:
    response = request_email_token(mail_api, endpoint, "Alice@example.org", secret="other")

    assert response.status == 400
    assert response.errcode == "M_THREEPID_IN_USE"
    assert_nothing_stored(smtp)


def test_a_password_reset_needs_an_address_in_use(
    mail_api: MatrixTestClient, smtp: SMTPSink, owned: Persona
) -> None:
    response = request_email_token(mail_api, "account/password", "nobody@example.org")

    assert response.status == 400
    assert response.errcode == "M_THREEPID_NOT_FOUND"
    assert_nothing_stored(smtp)
    assert request_email_token(mail_api, "account/password", "alice@example.org").status == 200


# --- send_attempt ----------------------------------------------------------------------


def test_the_same_send_attempt_answers_the_same_session_and_sends_nothing(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    first = request_email_token(mail_api, "register", "carol@example.org")
    again = request_email_token(mail_api, "register", "carol@example.org")
    lower = request_email_token(mail_api, "register", "carol@example.org", send_attempt=0)

    assert first.status == again.status == lower.status == 200
    assert first.body["sid"] == again.body["sid"] == lower.body["sid"]
    assert len(smtp.messages) == 1


def test_a_higher_send_attempt_sends_a_new_token(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    first = request_email_token(mail_api, "register", "carol@example.org")
    old_link = link_in(smtp.messages[0])
    second = request_email_token(mail_api, "register", "carol@example.org", send_attempt=2)

    assert second.body["sid"] == first.body["sid"]
    assert len(smtp.messages) == 2
    new_link = link_in(smtp.messages[1])
    assert new_link != old_link
    assert open_link(mail_api, old_link).status_code == 400
    assert open_link(mail_api, new_link).status_code == 200


def test_another_client_secret_is_another_session(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    first = request_email_token(mail_api, "register", "carol@example.org")
    other = request_email_token(mail_api, "register", "carol@example.org", secret="other")

    assert first.body["sid"] != other.body["sid"]
    assert len(smtp.messages) == 2


# --- The token's way back --------------------------------------------------------------


def test_the_token_is_stored_as_its_digest_only(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    request_email_token(mail_api, "register", "carol@example.org")
    token = token_of(link_in(smtp.messages[0]))["token"]

    session = ThreepidValidationSession.objects.get()

    assert token not in str(session.__dict__)
    assert len(session.token_hash) == 64


def test_submit_url_post_validates(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    request_email_token(mail_api, "register", "carol@example.org")
    params = token_of(link_in(smtp.messages[0]))

    response = mail_api.post(SUBMIT, params)

    assert response.status == 200, response.body
    assert response.body == {"success": True}
    assert ThreepidValidationSession.objects.get().validated_at_ms is not None
    # Submitting the right token again is still a success.
    assert mail_api.post(SUBMIT, params).body == {"success": True}


def test_a_wrong_token_is_refused_and_counted(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    request_email_token(mail_api, "register", "carol@example.org")
    params = token_of(link_in(smtp.messages[0]))

    response = mail_api.post(SUBMIT, {**params, "token": "wrong"})

    assert response.status == 400
    assert response.errcode == "M_TOKEN_INCORRECT"
    session = ThreepidValidationSession.objects.get()
    assert session.validated_at_ms is None
    assert session.failed_attempts == 1


def test_too_many_wrong_tokens_kill_the_token(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    request_email_token(mail_api, "register", "carol@example.org")
    link = link_in(smtp.messages[0])
    params = token_of(link)
    for _ in range(threepids.MAX_FAILED_ATTEMPTS):
        assert mail_api.post(SUBMIT, {**params, "token": "wrong"}).errcode == "M_TOKEN_INCORRECT"

    right = mail_api.post(SUBMIT, params)
    page = open_link(mail_api, link)

    assert right.status == 400
    assert right.errcode == "M_SESSION_EXPIRED"
    assert page.status_code == 400
    assert b"This link has expired" in page.content
    assert ThreepidValidationSession.objects.get().validated_at_ms is None
    # A new token (a higher send_attempt) starts the count again.
    request_email_token(mail_api, "register", "carol@example.org", send_attempt=2)
    assert mail_api.post(SUBMIT, token_of(link_in(smtp.messages[1]))).status == 200


def test_an_expired_token(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    request_email_token(mail_api, "register", "carol@example.org")
    link = link_in(smtp.messages[0])
    ThreepidValidationSession.objects.update(
        sent_at_ms=F("sent_at_ms") - threepids.TOKEN_LIFETIME_MS - 1
    )

    page = open_link(mail_api, link)
    posted = mail_api.post(SUBMIT, token_of(link))

    assert page.status_code == 400
    assert b"This link has expired" in page.content
    assert posted.errcode == "M_SESSION_EXPIRED"
    assert ThreepidValidationSession.objects.get().validated_at_ms is None


def test_an_expired_session_is_replaced(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    first = request_email_token(mail_api, "register", "carol@example.org")
    ThreepidValidationSession.objects.update(
        created_at_ms=F("created_at_ms") - threepids.SESSION_LIFETIME_MS - 1
    )

    again = request_email_token(mail_api, "register", "carol@example.org")

    assert again.body["sid"] != first.body["sid"]
    assert len(smtp.messages) == 2
    assert ThreepidValidationSession.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [{"sid": "unknown"}, {"client_secret": "other"}, {"sid": "bad sid"}, {"token": ""}],
)
def test_a_link_that_names_no_session(
    mail_api: MatrixTestClient, smtp: SMTPSink, change: dict[str, str]
) -> None:
    request_email_token(mail_api, "register", "carol@example.org")
    params = {**token_of(link_in(smtp.messages[0])), **change}

    response = mail_api.post(SUBMIT, params)
    page = mail_api.client.get(SUBMIT, params)

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert page.status_code == 400
    assert b"This link is not valid" in page.content
    assert ThreepidValidationSession.objects.get().validated_at_ms is None


def test_next_link_is_where_the_page_goes(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    next_link = "https://app.example.org/verified?x=1"
    request_email_token(mail_api, "register", "carol@example.org", next_link=next_link)

    page = open_link(mail_api, link_in(smtp.messages[0]))

    assert page.status_code == 302
    assert page["Location"] == next_link


def test_a_next_link_that_is_not_http_is_not_followed(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    request_email_token(mail_api, "register", "carol@example.org", next_link="javascript:alert(1)")

    page = open_link(mail_api, link_in(smtp.messages[0]))

    assert page.status_code == 200
    assert b"Address verified" in page.content


# --- Rate limits -------------------------------------------------------------------------


@pytest.fixture
def ratelimited(settings: Any) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {
        **settings.RATELIMITS,
        "threepid_request_address": (0.0001, 2),
        "threepid_request_ip": (0.0001, 4),
    }


@pytest.mark.usefixtures("ratelimited")
def test_requests_for_one_address_are_limited(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    for attempt in (1, 2):
        sent = request_email_token(mail_api, "register", "c@example.org", send_attempt=attempt)
        assert sent.status == 200, sent.body

    limited = request_email_token(mail_api, "register", "c@example.org", send_attempt=3)

    assert limited.status == 429
    assert limited.errcode == "M_LIMIT_EXCEEDED"
    assert limited.body["retry_after_ms"] > 0
    assert len(smtp.messages) == 2
    assert ThreepidValidationSession.objects.get().send_attempt == 2


@pytest.mark.usefixtures("ratelimited")
def test_requests_from_one_client_are_limited(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    for n in range(4):
        assert request_email_token(mail_api, "register", f"c{n}@example.org").status == 200

    limited = request_email_token(mail_api, "register", "c9@example.org")

    assert limited.status == 429
    assert limited.errcode == "M_LIMIT_EXCEEDED"
    assert ThreepidValidationSession.objects.count() == 4
    assert len(smtp.messages) == 4


# --- Phone numbers ---------------------------------------------------------------------


def request_sms(api: MatrixTestClient, endpoint: str, phone: str, **extra: Any) -> Any:
    return api.post(
        f"{endpoint}/msisdn/requestToken",
        {
            "client_secret": SECRET,
            "country": "US",
            "phone_number": phone,
            "send_attempt": 1,
            **extra,
        },
    )


def test_a_phone_number_by_sms_webhook(
    mail_api: MatrixTestClient, sms: SMSWebhook, smtp: SMTPSink
) -> None:
    alice = mail_api.register("alice", "pw-alice")

    response = request_sms(mail_api, "account/3pid", "(650) 253-0000")

    assert response.status == 200, response.body
    assert response.body["submit_url"] == "https://matrix.test" + SUBMIT
    [sent] = sms.bodies
    assert sent["to"] == "+16502530000"
    assert sent["msisdn"] == "16502530000"
    assert sent["purpose"] == "add"
    assert sent["code"] in sent["text"]
    assert len(sent["code"]) == 6
    validated = mail_api.post(
        response.body["submit_url"].removeprefix("https://matrix.test"),
        {"sid": response.body["sid"], "client_secret": SECRET, "token": sent["code"]},
    )
    assert validated.body == {"success": True}
    body = {"client_secret": SECRET, "sid": response.body["sid"]}
    first = mail_api.post("account/3pid/add", body, token=alice.access_token)
    added = mail_api.post(
        "account/3pid/add",
        {**body, "auth": password_auth(alice, first.body["session"])},
        token=alice.access_token,
    )
    assert added.status == 200, added.body
    assert UserThreepid.objects.get().address == "16502530000"
    for identifier in (
        {"type": "m.id.phone", "country": "US", "phone": "650 253 0000"},
        {"type": "m.id.thirdparty", "medium": "msisdn", "address": "16502530000"},
    ):
        login = mail_api.post(
            "login", {"type": "m.login.password", "identifier": identifier, "password": "pw-alice"}
        )
        assert login.status == 200, login.body
        assert login.body["user_id"] == alice.user_id


def test_an_invalid_phone_number(mail_api: MatrixTestClient, sms: SMSWebhook) -> None:
    response = request_sms(mail_api, "register", "12")

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
    assert sms.bodies == []
    assert not ThreepidValidationSession.objects.exists()


@pytest.mark.parametrize(
    ("endpoint", "status", "errcode"),
    [
        ("register", 403, "M_THREEPID_DENIED"),
        ("account/password", 403, "M_THREEPID_DENIED"),
        ("account/3pid", 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
    ],
)
def test_no_sms_without_a_webhook(
    mail_api: MatrixTestClient, endpoint: str, status: int, errcode: str
) -> None:
    response = request_sms(mail_api, endpoint, "(650) 253-0000")

    assert response.status == status
    assert response.errcode == errcode
    assert not ThreepidValidationSession.objects.exists()


def test_capabilities_allow_3pid_changes(mail_api: MatrixTestClient) -> None:
    alice = mail_api.register("alice", "pw-alice")

    response = mail_api.get("capabilities", token=alice.access_token)

    assert response.body["capabilities"]["m.3pid_changes"] == {"enabled": True}


def test_a_down_sms_webhook_does_not_fail_the_request(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    sms.stop()

    response = request_sms(mail_api, "register", "(650) 253-0000")

    assert response.status == 200, response.body
    assert ThreepidValidationSession.objects.filter(sid=response.body["sid"]).exists()


# --- Housekeeping ----------------------------------------------------------------------


def test_expired_sessions_are_purged(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    from accounts.tasks import purge_expired_auth_state

    request_email_token(mail_api, "register", "old@example.org")
    ThreepidValidationSession.objects.update(
        created_at_ms=F("created_at_ms") - threepids.SESSION_LIFETIME_MS - 1
    )
    request_email_token(mail_api, "register", "new@example.org")

    purged = purge_expired_auth_state.delay().get()

    assert purged["threepid_sessions"] == 1
    assert list(ThreepidValidationSession.objects.values_list("address", flat=True)) == [
        "new@example.org"
    ]
