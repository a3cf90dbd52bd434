"""The ``m.login.msisdn`` UIA stage (Client-Server API, "Phone number/MSISDN-based
(identity / homeserver)"): registering with a phone number, resetting a forgotten
password with one.

Every code is read from the SMS as it arrived at the operator's webhook
(tests/mail_sinks.py) and posted to the ``submit_url`` requestToken gave, as a client
does.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import F

from accounts.models import ThreepidValidationSession, User, UserThreepid
from accounts.services import threepids
from tests.accounts.helpers import password_auth, whoami
from tests.accounts.threepid_support import (
    SECRET,
    code_in,
    email_auth,
    mail_api,
    msisdn_auth,
    request_sms_token,
    sms,
    smtp,
    submit_sms_code,
    verify_email,
    verify_msisdn,
)
from tests.conftest import MatrixTestClient, Persona
from tests.mail_sinks import SMSWebhook, SMTPSink

__all__ = ["mail_api", "sms", "smtp"]  # fixtures

SERVER = settings.SERVER_NAME
PHONE = "(650) 253-0000"
MSISDN = "16502530000"
BODY = {"username": "carol", "password": "pw-carol"}


def start_registration(api: MatrixTestClient) -> str:
    first = api.post("register", BODY)
    assert first.status == 401, first.body
    return str(first.body["session"])


def add_phone(api: MatrixTestClient, sms: SMSWebhook, who: Persona, phone: str) -> None:
    sid = verify_msisdn(api, sms, "account/3pid", phone)
    body = {"client_secret": SECRET, "sid": sid}
    first = api.post("account/3pid/add", body, token=who.access_token)
    done = api.post(
        "account/3pid/add",
        {**body, "auth": password_auth(who, first.body["session"])},
        token=who.access_token,
    )
    assert done.status == 200, done.body


def login_by_phone(api: MatrixTestClient, password: str) -> Any:
    return api.post(
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.phone", "country": "US", "phone": PHONE},
            "password": password,
        },
    )


# --- Registration -------------------------------------------------------------------------


def test_registration_offers_a_phone_flow_when_sms_can_be_sent(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    response = mail_api.post("register", BODY)

    assert response.status == 401
    assert response.body["flows"] == [
        {"stages": ["m.login.dummy"]},
        {"stages": ["m.login.email.identity"]},
        {"stages": ["m.login.msisdn"]},
    ]


def test_registration_requiring_email_offers_no_phone_flow(
    mail_api: MatrixTestClient, sms: SMSWebhook, settings: Any
) -> None:
    settings.REGISTRATION_REQUIRES_EMAIL = True
    session = start_registration(mail_api)
    sid = verify_msisdn(mail_api, sms, "register", PHONE)

    response = mail_api.post("register", {**BODY, "auth": msisdn_auth(sid, session)})

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.email.identity"]}]
    assert response.errcode == "M_UNRECOGNIZED"
    assert not User.objects.filter(localpart="carol").exists()


def test_registration_token_comes_before_the_phone(
    mail_api: MatrixTestClient, sms: SMSWebhook, settings: Any
) -> None:
    settings.REGISTRATION = "token"

    response = mail_api.post("register", BODY)

    assert {"stages": ["m.login.registration_token", "m.login.msisdn"]} in response.body["flows"]


def test_registering_with_the_code_from_the_sms(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)
    requested = request_sms_token(mail_api, "register", PHONE)
    assert requested.status == 200, requested.body
    [sent] = sms.bodies
    assert sent["to"] == f"+{MSISDN}"
    assert sent["purpose"] == "register"

    # Before the code is typed in the stage fails, and no account is made.
    auth = msisdn_auth(requested.body["sid"], session)
    early = mail_api.post("register", {**BODY, "auth": auth})
    assert early.status == 401
    assert early.errcode == "M_THREEPID_AUTH_FAILED"
    assert early.body["completed"] == []
    assert not User.objects.filter(localpart="carol").exists()

    assert submit_sms_code(mail_api, requested, code_in(sent)).body == {"success": True}
    done = mail_api.post("register", {**BODY, "auth": auth})

    assert done.status == 200, done.body
    assert done.body["user_id"] == f"@carol:{SERVER}"
    listed = mail_api.get("account/3pid", token=done.body["access_token"]).body["threepids"]
    assert [(t["medium"], t["address"]) for t in listed] == [("msisdn", MSISDN)]
    # The validation is spent, and the number logs in.
    assert not ThreepidValidationSession.objects.exists()
    login = login_by_phone(mail_api, "pw-carol")
    assert login.status == 200, login.body
    assert login.body["user_id"] == f"@carol:{SERVER}"


def test_an_email_validation_does_not_complete_the_phone_stage(
    mail_api: MatrixTestClient, sms: SMSWebhook, smtp: SMTPSink
) -> None:
    session = start_registration(mail_api)
    sid = verify_email(mail_api, smtp, "register", "carol@example.org")

    response = mail_api.post("register", {**BODY, "auth": msisdn_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert response.body["completed"] == []
    assert not User.objects.filter(localpart="carol").exists()


def test_a_phone_validation_does_not_complete_the_email_stage(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)
    sid = verify_msisdn(mail_api, sms, "register", PHONE)

    response = mail_api.post("register", {**BODY, "auth": email_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert not User.objects.filter(localpart="carol").exists()


def test_a_phone_validated_to_add_to_an_account_does_not_register(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)
    sid = verify_msisdn(mail_api, sms, "account/3pid", PHONE)

    response = mail_api.post("register", {**BODY, "auth": msisdn_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert not User.objects.filter(localpart="carol").exists()


def test_an_expired_phone_validation_does_not_register(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)
    sid = verify_msisdn(mail_api, sms, "register", PHONE)
    ThreepidValidationSession.objects.update(
        created_at_ms=F("created_at_ms") - threepids.SESSION_LIFETIME_MS - 1
    )

    response = mail_api.post("register", {**BODY, "auth": msisdn_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert not User.objects.filter(localpart="carol").exists()


def test_the_wrong_client_secret_does_not_register(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)
    sid = verify_msisdn(mail_api, sms, "register", PHONE)

    response = mail_api.post(
        "register", {**BODY, "auth": msisdn_auth(sid, session, secret="someone-else")}
    )

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert not User.objects.filter(localpart="carol").exists()


def test_a_phone_stage_without_creds_is_missing_param(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)

    response = mail_api.post(
        "register", {**BODY, "auth": {"type": "m.login.msisdn", "session": session}}
    )

    # A failed stage: the UIA 401, with the stage's error in it.
    assert response.status == 401
    assert response.errcode == "M_MISSING_PARAM"
    assert response.body["session"] == session


def test_a_number_taken_since_its_sms_was_sent_does_not_register(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    session = start_registration(mail_api)
    sid = verify_msisdn(mail_api, sms, "register", PHONE)
    dave = mail_api.register("dave", "pw-dave")
    add_phone(mail_api, sms, dave, PHONE)

    response = mail_api.post("register", {**BODY, "auth": msisdn_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_IN_USE"
    assert not User.objects.filter(localpart="carol").exists()


# --- A forgotten password -------------------------------------------------------------------


def test_resetting_a_forgotten_password_by_phone(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_phone(mail_api, sms, alice, PHONE)
    requested = request_sms_token(mail_api, "account/password", PHONE)
    assert requested.status == 200, requested.body
    assert sms.bodies[-1]["purpose"] == "password"

    first = mail_api.post("account/password", {"new_password": "new-pw"})
    assert first.status == 401
    assert first.body["flows"] == [
        {"stages": ["m.login.email.identity"]},
        {"stages": ["m.login.msisdn"]},
    ]
    submit_sms_code(mail_api, requested, code_in(sms.bodies[-1]))
    done = mail_api.post(
        "account/password",
        {
            "new_password": "new-pw",
            "auth": msisdn_auth(requested.body["sid"], first.body["session"]),
        },
    )

    assert done.status == 200, done.body
    assert login_by_phone(mail_api, "new-pw").status == 200
    assert mail_api.login("alice", "pw-alice").errcode == "M_FORBIDDEN"
    assert whoami(mail_api, alice.access_token).errcode == "M_UNKNOWN_TOKEN"
    # The validation is spent: it cannot reset the password again.
    again = mail_api.post(
        "account/password",
        {"new_password": "other", "auth": msisdn_auth(requested.body["sid"])},
    )
    assert again.status == 401
    assert again.errcode == "M_THREEPID_AUTH_FAILED"
    assert mail_api.login("alice", "new-pw").status == 200


def test_a_number_no_longer_bound_does_not_reset_a_password(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_phone(mail_api, sms, alice, PHONE)
    sid = verify_msisdn(mail_api, sms, "account/password", PHONE)
    # Removed from the account after the code was sent.
    UserThreepid.objects.filter(address=MSISDN).delete()

    response = mail_api.post(
        "account/password", {"new_password": "new-pw", "auth": msisdn_auth(sid)}
    )

    assert response.status == 401
    assert response.errcode == "M_THREEPID_NOT_FOUND"
    assert mail_api.login("alice", "pw-alice").status == 200


def test_a_registration_validation_does_not_reset_a_password_by_phone(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_phone(mail_api, sms, alice, PHONE)
    # A session of another purpose, for a number nobody has, validated.
    sid = verify_msisdn(mail_api, sms, "register", "(650) 253-0001")

    response = mail_api.post(
        "account/password", {"new_password": "new-pw", "auth": msisdn_auth(sid)}
    )

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert mail_api.login("alice", "pw-alice").status == 200


def test_an_unvalidated_number_does_not_reset_a_password(
    mail_api: MatrixTestClient, sms: SMSWebhook
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_phone(mail_api, sms, alice, PHONE)
    requested = request_sms_token(mail_api, "account/password", PHONE)
    wrong = "000000" if code_in(sms.bodies[-1]) != "000000" else "111111"
    assert submit_sms_code(mail_api, requested, wrong).errcode == "M_TOKEN_INCORRECT"

    response = mail_api.post(
        "account/password",
        {"new_password": "new-pw", "auth": msisdn_auth(requested.body["sid"])},
    )

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert mail_api.login("alice", "pw-alice").status == 200


def test_no_phone_reset_flow_without_sms(mail_api: MatrixTestClient) -> None:
    response = mail_api.post(
        "account/password", {"new_password": "new-pw", "auth": msisdn_auth("sid")}
    )

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.email.identity"]}]
    assert response.errcode == "M_UNRECOGNIZED"
