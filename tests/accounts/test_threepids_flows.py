"""What a user does with an email address, end to end through a real SMTP server:
register with it, add it to an account, log in with it, reset a forgotten password.

Every mail is read as it arrived at the SMTP server (tests/mail_sinks.py) and its link
opened with the test client, as a person would.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from accounts.models import ThreepidValidationSession, User, UserThreepid
from tests.accounts.helpers import password_auth, whoami
from tests.accounts.threepid_support import (
    SECRET,
    email_auth,
    link_in,
    mail_api,
    open_link,
    request_email_token,
    smtp,
    verify_email,
)
from tests.conftest import MatrixTestClient, Persona
from tests.mail_sinks import SMTPSink, html_of, text_of

__all__ = ["mail_api", "smtp"]  # fixtures

SERVER = settings.SERVER_NAME


@pytest.fixture
def email_required(settings: Any) -> None:
    settings.REGISTRATION_REQUIRES_EMAIL = True


def add_email(api: MatrixTestClient, smtp: SMTPSink, who: Persona, address: str) -> None:
    sid = verify_email(api, smtp, "account/3pid", address)
    body = {"client_secret": SECRET, "sid": sid}
    first = api.post("account/3pid/add", body, token=who.access_token)
    assert first.status == 401, first.body
    done = api.post(
        "account/3pid/add",
        {**body, "auth": password_auth(who, first.body["session"])},
        token=who.access_token,
    )
    assert done.status == 200, done.body


# --- Registration -------------------------------------------------------------------


@pytest.mark.usefixtures("email_required")
def test_registration_requiring_email_offers_only_the_email_flow(
    mail_api: MatrixTestClient,
) -> None:
    response = mail_api.post("register", {"username": "carol", "password": "pw-carol"})

    assert response.status == 401
    assert response.body["flows"] == [{"stages": ["m.login.email.identity"]}]


@pytest.mark.usefixtures("email_required")
def test_registering_with_the_mailed_link(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    body = {"username": "carol", "password": "pw-carol"}
    session = mail_api.post("register", body).body["session"]
    requested = request_email_token(mail_api, "register", "Carol@Example.ORG")
    assert requested.status == 200, requested.body
    assert set(requested.body) == {"sid"}

    # Before the link is opened the stage fails, and no account is made.
    early = mail_api.post("register", {**body, "auth": email_auth(requested.body["sid"], session)})
    assert early.status == 401
    assert early.errcode == "M_THREEPID_AUTH_FAILED"
    assert not User.objects.filter(localpart="carol").exists()

    message = smtp.wait_for("carol@example.org")
    assert message["Subject"] == f"Confirm your email address for {SERVER}"
    assert message["From"] == settings.EMAIL_FROM
    link = link_in(message)
    assert link.startswith("https://matrix.test/_trellis/client/threepid/submit_token?")
    assert link.replace("&", "&amp;") in html_of(message)
    page = open_link(mail_api, link)
    assert page.status_code == 200
    assert b"Address verified" in page.content

    done = mail_api.post("register", {**body, "auth": email_auth(requested.body["sid"], session)})

    assert done.status == 200, done.body
    assert done.body["user_id"] == f"@carol:{SERVER}"
    threepids = mail_api.get("account/3pid", token=done.body["access_token"]).body["threepids"]
    assert [(t["medium"], t["address"]) for t in threepids] == [("email", "carol@example.org")]
    assert threepids[0]["validated_at"] <= threepids[0]["added_at"]
    # The session is spent: it cannot make a second account.
    assert not ThreepidValidationSession.objects.exists()


@pytest.mark.usefixtures("email_required")
def test_registration_requiring_email_refuses_the_dummy_stage(mail_api: MatrixTestClient) -> None:
    body = {"username": "carol", "password": "pw-carol"}
    session = mail_api.post("register", body).body["session"]

    response = mail_api.post(
        "register", {**body, "auth": {"type": "m.login.dummy", "session": session}}
    )

    assert response.status == 401
    assert response.errcode == "M_UNRECOGNIZED"
    assert not User.objects.filter(localpart="carol").exists()


def test_optional_email_flow_beside_dummy(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    body = {"username": "dave", "password": "pw-dave"}
    first = mail_api.post("register", body)
    assert first.body["flows"] == [
        {"stages": ["m.login.dummy"]},
        {"stages": ["m.login.email.identity"]},
    ]
    sid = verify_email(mail_api, smtp, "register", "dave@example.org")

    done = mail_api.post("register", {**body, "auth": email_auth(sid, first.body["session"])})

    assert done.status == 200, done.body
    assert UserThreepid.objects.get(address="dave@example.org").user.localpart == "dave"


@pytest.mark.usefixtures("email_required")
def test_a_session_made_to_add_an_address_does_not_register(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    body = {"username": "carol", "password": "pw-carol"}
    session = mail_api.post("register", body).body["session"]
    sid = verify_email(mail_api, smtp, "account/3pid", "carol@example.org")

    response = mail_api.post("register", {**body, "auth": email_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert not User.objects.filter(localpart="carol").exists()


# --- Adding an address, logging in with it -----------------------------------------------


def test_adding_an_email_then_logging_in_with_it(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    alice = mail_api.register("alice", "pw-alice")

    add_email(mail_api, smtp, alice, "Alice@Example.org")

    listed = mail_api.get("account/3pid", token=alice.access_token)
    assert [t["address"] for t in listed.body["threepids"]] == ["alice@example.org"]
    for identifier in (
        {"type": "m.id.thirdparty", "medium": "email", "address": "alice@example.org"},
        {"type": "m.id.thirdparty", "medium": "email", "address": "ALICE@example.org"},
    ):
        login = mail_api.post(
            "login", {"type": "m.login.password", "identifier": identifier, "password": "pw-alice"}
        )
        assert login.status == 200, login.body
        assert login.body["user_id"] == alice.user_id
    # The deprecated top-level fields (Client-Server API r0 login).
    legacy = mail_api.post(
        "login",
        {
            "type": "m.login.password",
            "medium": "email",
            "address": "alice@example.org",
            "password": "pw-alice",
        },
    )
    assert legacy.status == 200, legacy.body


def test_login_with_an_unknown_address_is_a_wrong_password(mail_api: MatrixTestClient) -> None:
    mail_api.register("alice", "pw-alice")

    response = mail_api.post(
        "login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "x@y.org"},
            "password": "pw-alice",
        },
    )

    assert response.status == 403
    assert response.errcode == "M_FORBIDDEN"


def test_a_second_address_is_announced_to_the_first(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_email(mail_api, smtp, alice, "alice@example.org")

    add_email(mail_api, smtp, alice, "alice@work.example")

    notice = smtp.to("alice@example.org")[-1]
    assert notice["Subject"] == f"An email address was added to your {SERVER} account"
    assert "alice@work.example" in text_of(notice)
    assert len(smtp.to("alice@work.example")) == 1  # only its own verification mail


def test_adding_before_the_link_is_opened_fails(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    sid = request_email_token(mail_api, "account/3pid", "alice@example.org").body["sid"]
    body = {"client_secret": SECRET, "sid": sid}
    first = mail_api.post("account/3pid/add", body, token=alice.access_token)

    response = mail_api.post(
        "account/3pid/add",
        {**body, "auth": password_auth(alice, first.body["session"])},
        token=alice.access_token,
    )

    assert response.status == 403
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert not UserThreepid.objects.exists()


def test_an_address_of_another_account_cannot_be_added(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    bob = mail_api.register("bob", "pw-bob")
    # Both ask before either adds it; alice is first to finish.
    sid = verify_email(mail_api, smtp, "account/3pid", "shared@example.org", secret="bobs")
    add_email(mail_api, smtp, alice, "shared@example.org")
    body = {"client_secret": "bobs", "sid": sid}
    first = mail_api.post("account/3pid/add", body, token=bob.access_token)

    response = mail_api.post(
        "account/3pid/add",
        {**body, "auth": password_auth(bob, first.body["session"])},
        token=bob.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_THREEPID_IN_USE"
    assert list(UserThreepid.objects.values_list("user__localpart", flat=True)) == ["alice"]


# --- A forgotten password ---------------------------------------------------------------


def test_resetting_a_forgotten_password(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_email(mail_api, smtp, alice, "alice@example.org")
    sid = verify_email(mail_api, smtp, "account/password", "alice@example.org")
    reset_mail = smtp.to("alice@example.org")[-1]
    assert reset_mail["Subject"] == f"Reset your {SERVER} password"

    first = mail_api.post("account/password", {"new_password": "new-pw"})
    assert first.status == 401
    assert first.body["flows"] == [{"stages": ["m.login.email.identity"]}]
    done = mail_api.post(
        "account/password",
        {"new_password": "new-pw", "auth": email_auth(sid, first.body["session"])},
    )

    assert done.status == 200, done.body
    assert mail_api.login("alice", "new-pw").status == 200
    assert mail_api.login("alice", "pw-alice").errcode == "M_FORBIDDEN"
    # logout_devices defaults to true: the old session is gone.
    assert whoami(mail_api, alice.access_token).errcode == "M_UNKNOWN_TOKEN"
    notice = smtp.to("alice@example.org")[-1]
    assert notice["Subject"] == f"Your {SERVER} password was changed"
    assert alice.user_id in text_of(notice)
    # The validation is spent: it cannot reset the password again.
    again = mail_api.post("account/password", {"new_password": "other", "auth": email_auth(sid)})
    assert again.status == 401
    assert again.errcode == "M_THREEPID_AUTH_FAILED"


def test_reset_keeping_the_devices(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_email(mail_api, smtp, alice, "alice@example.org")
    sid = verify_email(mail_api, smtp, "account/password", "alice@example.org")

    done = mail_api.post(
        "account/password",
        {"new_password": "new-pw", "logout_devices": False, "auth": email_auth(sid)},
    )

    assert done.status == 200, done.body
    assert whoami(mail_api, alice.access_token).status == 200


def test_a_registration_validation_does_not_reset_a_password(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_email(mail_api, smtp, alice, "alice@example.org")
    # A session of another purpose, for an address nobody has, validated.
    sid = verify_email(mail_api, smtp, "register", "nobody@example.org")

    response = mail_api.post(
        "account/password", {"new_password": "new-pw", "auth": email_auth(sid)}
    )

    assert response.status == 401
    assert response.errcode == "M_THREEPID_AUTH_FAILED"
    assert mail_api.login("alice", "pw-alice").status == 200


def test_changing_the_password_is_announced(mail_api: MatrixTestClient, smtp: SMTPSink) -> None:
    alice = mail_api.register("alice", "pw-alice")
    add_email(mail_api, smtp, alice, "alice@example.org")
    first = mail_api.post("account/password", {"new_password": "new"}, token=alice.access_token)

    mail_api.post(
        "account/password",
        {"new_password": "new", "auth": password_auth(alice, first.body["session"])},
        token=alice.access_token,
    )

    assert smtp.to("alice@example.org")[-1]["Subject"] == f"Your {SERVER} password was changed"


# --- Delivery --------------------------------------------------------------------------


def test_a_down_smtp_server_does_not_fail_the_request(
    mail_api: MatrixTestClient, smtp: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accounts.services import mail

    attempts: list[str] = []
    deliver = mail.deliver

    def counted(to: str, *args: str) -> None:
        attempts.append(to)
        deliver(to, *args)

    monkeypatch.setattr(mail, "deliver", counted)
    smtp.stop()

    response = request_email_token(mail_api, "register", "carol@example.org")

    assert response.status == 200, response.body
    assert ThreepidValidationSession.objects.filter(sid=response.body["sid"]).exists()
    # Refused connections are retried (eagerly here; with backoff in a worker).
    assert len(attempts) > 1


@pytest.mark.usefixtures("email_required")
def test_an_address_taken_since_its_mail_was_sent_does_not_register(
    mail_api: MatrixTestClient, smtp: SMTPSink
) -> None:
    body = {"username": "carol", "password": "pw-carol"}
    session = mail_api.post("register", body).body["session"]
    sid = verify_email(mail_api, smtp, "register", "taken@example.org")
    # Meanwhile an operator gives the address to another account.
    dave = User.objects.create_user("dave", "pw-dave")
    UserThreepid.objects.create(
        user=dave, medium="email", address="taken@example.org", validated_at_ms=1, added_at_ms=1
    )

    response = mail_api.post("register", {**body, "auth": email_auth(sid, session)})

    assert response.status == 401
    assert response.errcode == "M_THREEPID_IN_USE"
    assert not User.objects.filter(localpart="carol").exists()
