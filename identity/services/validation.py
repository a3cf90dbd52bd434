"""Validation sessions: proving that one owns an email address or a phone number
(identity-service-api.md, "Establishing associations").

A session lives 24 hours from its most recent modification (made, token sent again,
validated). Tokens are kept as SHA-256 digests; a session takes a few wrong tokens, then
only a fresh one (a new ``send_attempt``) is accepted.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from accounts.services import mail
from accounts.tokens import token_digest
from config.ratelimit import check_ratelimit
from identity.models import Medium, ValidationSession
from protocol.errors import MatrixError
from protocol.threepids import canonical_email, is_opaque_id, msisdn

SESSION_LIFETIME_MS = 24 * 3600 * 1000
MAX_FAILED_ATTEMPTS = 5
MAX_TOKEN_LENGTH = 255
SUBMIT_EMAIL_PATH = "_matrix/identity/v2/validate/email/submitToken"


def check_client_secret(client_secret: str) -> None:
    if not is_opaque_id(client_secret):
        raise MatrixError(
            "M_INVALID_PARAM", "client_secret must be 1 to 255 characters of [0-9a-zA-Z.=_-]"
        )


def check_sid(sid: str) -> None:
    if not is_opaque_id(sid):
        raise MatrixError("M_INVALID_PARAM", "sid must be 1 to 255 characters of [0-9a-zA-Z.=_-]")


def msisdn_from(country: str, phone_number: str) -> str:
    """The MSISDN (digits, with the country code) of a number as dialled from ``country``;
    400 M_INVALID_ADDRESS if it is no valid number."""
    number = msisdn(country, phone_number)
    if number is None:
        raise MatrixError("M_INVALID_ADDRESS", "The phone number is not valid")
    return number


def _request_token(
    medium: str,
    address: str,
    client_secret: str,
    send_attempt: int,
    next_link: str,
    client_ip: str,
    new_token: Callable[[], str],
    send: Callable[[ValidationSession, str], None],
) -> str:
    """Find or make the session of (client_secret, medium, address) and send it a token
    unless this ``send_attempt`` was seen already; return its sid."""
    check_ratelimit("identity_request_token", client_ip)
    for _ in range(2):
        try:
            with transaction.atomic():
                return _request_token_once(
                    medium, address, client_secret, send_attempt, next_link, new_token, send
                )
        except IntegrityError:
            # A concurrent request made the session first: the second round finds it.
            continue
    raise MatrixError("M_UNKNOWN", "Could not create the validation session", status=500)


def _request_token_once(
    medium: str,
    address: str,
    client_secret: str,
    send_attempt: int,
    next_link: str,
    new_token: Callable[[], str],
    send: Callable[[ValidationSession, str], None],
) -> str:
    session = (
        ValidationSession.objects.select_for_update()
        .filter(client_secret=client_secret, medium=medium, address=address)
        .first()
    )
    now = now_ms()
    if session is not None and (
        send_attempt <= session.send_attempt or session.validated_at_ms is not None
    ):
        # A retry of a request already answered, or nothing left to prove: nothing sent.
        return session.sid
    # Per address: nobody gets more than a few tokens a minute, whoever asks.
    check_ratelimit("identity_send_token", f"{medium}:{address}")
    token = new_token()
    if session is None:
        session = ValidationSession(
            sid=secrets.token_urlsafe(18),
            client_secret=client_secret,
            medium=medium,
            address=address,
            created_at_ms=now,
        )
    session.token_hash = token_digest(token)
    session.send_attempt = send_attempt
    session.next_link = next_link
    session.modified_at_ms = now
    session.failed_attempts = 0
    session.save()
    send(session, token)
    return session.sid


def do_request_email_token(
    client_secret: str, email: str, send_attempt: int, next_link: str, client_ip: str
) -> str:
    """POST /validate/email/requestToken: mail a link with a token to ``email``."""
    check_client_secret(client_secret)
    address = canonical_email(email)
    if address is None:
        raise MatrixError("M_INVALID_EMAIL", "The email address is not valid")

    def send(session: ValidationSession, token: str) -> None:
        query = urlencode(
            {"sid": session.sid, "client_secret": session.client_secret, "token": token}
        )
        link = f"{settings.PUBLIC_BASEURL}{SUBMIT_EMAIL_PATH}?{query}"
        mail.send_templated(address, "identity_validation", {"link": link, "token": token})

    return _request_token(
        Medium.EMAIL,
        address,
        client_secret,
        send_attempt,
        next_link,
        client_ip,
        lambda: secrets.token_urlsafe(24),
        send,
    )


def do_request_msisdn_token(
    client_secret: str,
    country: str,
    phone_number: str,
    send_attempt: int,
    next_link: str,
    client_ip: str,
) -> str:
    """POST /validate/msisdn/requestToken: text a six-digit code to the number."""
    check_client_secret(client_secret)
    msisdn = msisdn_from(country, phone_number)
    if not settings.SMS_WEBHOOK_URL:
        raise MatrixError(
            "M_DESTINATION_REJECTED", "This identity server sends no text messages", status=400
        )

    def send(session: ValidationSession, token: str) -> None:
        from identity.tasks import send_sms

        text = f"Your {settings.SERVER_NAME} verification code is {token}"
        transaction.on_commit(lambda: send_sms.delay(msisdn, text))

    return _request_token(
        Medium.MSISDN,
        msisdn,
        client_secret,
        send_attempt,
        next_link,
        client_ip,
        lambda: f"{secrets.randbelow(10**6):06d}",
        send,
    )


def _session(sid: str, client_secret: str, medium: str | None = None) -> ValidationSession:
    check_sid(sid)
    check_client_secret(client_secret)
    sessions = ValidationSession.objects.filter(sid=sid, client_secret=client_secret)
    if medium is not None:
        sessions = sessions.filter(medium=medium)
    session = sessions.first()
    if session is None:
        raise MatrixError(
            "M_NO_VALID_SESSION",
            "No valid session was found matching that sid and client secret",
            status=404,
        )
    return session


def _expired(session: ValidationSession, now: int) -> bool:
    return now - session.modified_at_ms > SESSION_LIFETIME_MS


def do_submit_token(medium: str, sid: str, client_secret: str, token: str) -> ValidationSession:
    """POST/GET /validate/{medium}/submitToken: the token came back, the address is proven.

    400 M_TOKEN_INCORRECT for a wrong token (and for any after too many wrong ones),
    M_SESSION_EXPIRED for a session past its lifetime.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "token is longer than 255 characters")
    with transaction.atomic():
        session = _session(sid, client_secret, medium)
        session = ValidationSession.objects.select_for_update().get(pk=session.pk)
        now = now_ms()
        if _expired(session, now):
            raise MatrixError("M_SESSION_EXPIRED", "This validation session has expired")
        if session.failed_attempts >= MAX_FAILED_ATTEMPTS:
            raise MatrixError(
                "M_TOKEN_INCORRECT",
                "Too many incorrect tokens: request a new one (a higher send_attempt)",
            )
        if not hmac.compare_digest(session.token_hash, token_digest(token)):
            session.failed_attempts += 1
            session.save(update_fields=["failed_attempts"])
            # Committed: a wrong guess counts even though the request fails.
            wrong = True
        else:
            wrong = False
            if session.validated_at_ms is None:
                session.validated_at_ms = now
                session.modified_at_ms = now
                session.save(update_fields=["validated_at_ms", "modified_at_ms"])
    if wrong:
        raise MatrixError("M_TOKEN_INCORRECT", "The token is incorrect")
    return session


def validated_session(sid: str, client_secret: str) -> ValidationSession:
    """The validated, unexpired session ``sid``: 404 M_NO_VALID_SESSION, 400
    M_SESSION_EXPIRED or 400 M_SESSION_NOT_VALIDATED otherwise."""
    session = _session(sid, client_secret)
    if _expired(session, now_ms()):
        raise MatrixError("M_SESSION_EXPIRED", "This validation session has expired")
    if session.validated_at_ms is None:
        raise MatrixError(
            "M_SESSION_NOT_VALIDATED", "This validation session has not yet been completed"
        )
    return session


def do_purge_expired_sessions() -> int:
    """Delete the sessions past their lifetime (they can no longer be used); how many."""
    deleted, _ = ValidationSession.objects.filter(
        modified_at_ms__lt=now_ms() - SESSION_LIFETIME_MS
    ).delete()
    return deleted
