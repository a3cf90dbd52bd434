"""The homeserver's own third-party identifiers (Client-Server API, "Adding Account
Administrative Contact Information" and the ``*/requestToken`` endpoints).

Proving an address: POST .../requestToken makes a :class:`ThreepidValidationSession`
and sends a token to the address (a link by mail, a code by SMS);
:func:`do_submit_token` validates the session when the token comes back (the link
opened, or the code posted to ``submit_url``). A validated session is then spent, once,
by registration, a password reset (the UIA stages ``m.login.email.identity`` and
``m.login.msisdn``) or POST /account/3pid/add, which makes the address a
:class:`UserThreepid` of the account.

Lifetimes: a token is good for :data:`TOKEN_LIFETIME_MS` (1 hour) after it was sent; a
session, validated or not, for :data:`SESSION_LIFETIME_MS` (24 hours) after it was
made. After :data:`MAX_FAILED_ATTEMPTS` wrong tokens the session's token is dead: the
client asks for a new one with a higher ``send_attempt``.

SMS: there is no SMS gateway in Trellis. The code is handed to the operator's webhook
(TRELLIS_SMS_WEBHOOK_URL) as a POST of the JSON object :func:`sms_webhook_body` makes::

    {"to": "+447700900001", "msisdn": "447700900001", "text": "...", "code": "123456",
     "purpose": "register", "server_name": "example.org"}
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from accounts.models import Medium, ThreepidValidationSession, User, UserThreepid
from accounts.selectors_threepids import emails_of
from accounts.services import mail
from protocol import threepids as protocol_threepids
from protocol.errors import MatrixError

TOKEN_LIFETIME_MS = 60 * 60 * 1000
SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000
MAX_FAILED_ATTEMPTS = 5

REGISTER = "register"
ADD = "add"
PASSWORD = "password"
PURPOSES = (REGISTER, ADD, PASSWORD)

# The longest address (RFC 3696 errata 1690), and so the address columns' length.
MAX_EMAIL_LENGTH = 320

# The grammar of client_secret and sid (identity service request_email_validation.yaml).
SECRET_RE = re.compile(r"[0-9a-zA-Z.=_-]{1,255}")

SUBMIT_PATH = "_trellis/client/threepid/submit_token"

# Mail templates (templates/mail/<name>.*) of the token sent for each purpose.
VERIFY_TEMPLATES = {REGISTER: "verify_registration", ADD: "verify_add", PASSWORD: "password_reset"}


# --- Addresses ------------------------------------------------------------------------


def canonical_email(address: str) -> str:
    """The address in its canonical form (lower case), or 400 M_INVALID_PARAM.

    administrative_contact.yaml: "M_INVALID_PARAM: The email address given was not valid".
    """
    address = address.strip()
    try:
        validate_email(address)
    except ValidationError:
        raise MatrixError("M_INVALID_PARAM", "Not a valid email address") from None
    canonical = address.lower()
    # Lower-casing can lengthen an address ("İ" becomes two characters) past what the
    # validator allowed and what an address column holds.
    if len(canonical) > MAX_EMAIL_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "Not a valid email address")
    return canonical


def canonical_msisdn(country: str, phone_number: str) -> str:
    """The MSISDN (digits of the international number) of a number as dialled from
    ``country``, or 400 M_INVALID_PARAM."""
    number = protocol_threepids.msisdn(country, phone_number)
    if number is None:
        raise MatrixError("M_INVALID_PARAM", "Not a valid phone number")
    return number


def canonical_address(medium: str, address: str) -> str:
    """``address`` canonicalised for ``medium`` as a client gives it (m.id.thirdparty)."""
    if medium == Medium.EMAIL:
        return canonical_email(address)
    if medium == Medium.MSISDN:
        digits = address.strip().lstrip("+")
        if not digits.isdigit():
            raise MatrixError("M_INVALID_PARAM", "An msisdn address is digits only")
        return digits
    raise MatrixError("M_THREEPID_MEDIUM_NOT_SUPPORTED", f"Unknown medium {medium!r}")


def check_client_secret(client_secret: str) -> None:
    if not SECRET_RE.fullmatch(client_secret):
        raise MatrixError(
            "M_INVALID_PARAM", "client_secret must be 1 to 255 of the characters [0-9a-zA-Z.=_-]"
        )


# --- Requesting a token -----------------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """The parsed body of a requestToken call."""

    medium: str
    address: str
    client_secret: str
    send_attempt: int
    next_link: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(medium: str) -> str:
    if medium == Medium.MSISDN:
        # Typed by hand from an SMS; MAX_FAILED_ATTEMPTS keeps guessing hopeless.
        return f"{secrets.randbelow(10**6):06d}"
    return secrets.token_urlsafe(32)


def submit_url() -> str:
    return f"{settings.PUBLIC_BASEURL}{SUBMIT_PATH}"


def validation_link(session: ThreepidValidationSession, token: str) -> str:
    query = urlencode({"sid": session.sid, "client_secret": session.client_secret, "token": token})
    return f"{submit_url()}?{query}"


def check_can_send(medium: str, purpose: str) -> None:
    """403 M_THREEPID_DENIED (or, for adding to an account, 400
    M_THREEPID_MEDIUM_NOT_SUPPORTED as administrative_contact.yaml says) when this server
    cannot deliver to the medium: phone numbers need TRELLIS_SMS_WEBHOOK_URL."""
    if medium == Medium.MSISDN and not settings.SMS_WEBHOOK_URL:
        if purpose == ADD:
            raise MatrixError(
                "M_THREEPID_MEDIUM_NOT_SUPPORTED", "This server cannot send SMS messages"
            )
        raise MatrixError("M_THREEPID_DENIED", "This server cannot send SMS messages")


def check_address_use(medium: str, address: str, purpose: str) -> None:
    """requestToken's check of the address: free for register and add (else
    M_THREEPID_IN_USE), bound to an account for a password reset (else
    M_THREEPID_NOT_FOUND)."""
    owned = UserThreepid.objects.filter(medium=medium, address=address).exists()
    if purpose == PASSWORD and not owned:
        raise MatrixError("M_THREEPID_NOT_FOUND", "No account has this address")
    if purpose != PASSWORD and owned:
        raise MatrixError("M_THREEPID_IN_USE", "This address is already in use")


def do_request_token(request: TokenRequest, purpose: str) -> ThreepidValidationSession:
    """POST .../{medium}/requestToken: the session for this client_secret and address,
    with a token sent to the address unless this ``send_attempt`` was already served.

    The same client_secret, address and send_attempt answer with the same session and
    send nothing; a higher send_attempt sends a new token (the old one stops working).
    An expired session is replaced by a new one.
    """
    check_can_send(request.medium, purpose)
    check_address_use(request.medium, request.address, purpose)
    now = now_ms()
    keys = {
        "client_secret": request.client_secret,
        "medium": request.medium,
        "address": request.address,
        "purpose": purpose,
    }
    try:
        with transaction.atomic():
            session = ThreepidValidationSession.objects.select_for_update().filter(**keys).first()
            if session is not None and now - session.created_at_ms > SESSION_LIFETIME_MS:
                session.delete()
                session = None
            if session is not None and request.send_attempt <= session.send_attempt:
                return session
            token = _new_token(request.medium)
            if session is None:
                session = ThreepidValidationSession(
                    sid=secrets.token_urlsafe(24), created_at_ms=now, **keys
                )
            session.token_hash = _hash(token)
            session.send_attempt = request.send_attempt
            session.next_link = request.next_link
            session.sent_at_ms = now
            session.failed_attempts = 0
            session.save()
            _send_token(session, token)
            return session
    except IntegrityError:
        # A concurrent request with the same client_secret made the session first.
        return ThreepidValidationSession.objects.get(**keys)


def _send_token(session: ThreepidValidationSession, token: str) -> None:
    """Queue the token's delivery for after the commit (mail, or the SMS webhook)."""
    if session.medium == Medium.EMAIL:
        mail.send_templated(
            session.address,
            VERIFY_TEMPLATES[session.purpose],
            {
                "link": validation_link(session, token),
                "address": session.address,
                "lifetime_minutes": TOKEN_LIFETIME_MS // 60000,
            },
        )
        return
    from accounts.tasks import deliver_sms

    body = sms_webhook_body(session, token)
    transaction.on_commit(lambda: deliver_sms.delay(settings.SMS_WEBHOOK_URL, body))


def sms_webhook_body(session: ThreepidValidationSession, token: str) -> dict[str, Any]:
    """The JSON posted to TRELLIS_SMS_WEBHOOK_URL for one code (see the module doc)."""
    return {
        "to": f"+{session.address}",
        "msisdn": session.address,
        "text": f"Your {settings.SERVER_NAME} verification code is {token}",
        "code": token,
        "purpose": session.purpose,
        "server_name": settings.SERVER_NAME,
    }


# --- Submitting the token -----------------------------------------------------------------


def _expired(error: str) -> MatrixError:
    return MatrixError("M_SESSION_EXPIRED", error, status=400)


def do_submit_token(sid: str, client_secret: str, token: str) -> ThreepidValidationSession:
    """Validate the session ``sid`` with ``token`` (the mailed link, or the ``submit_url``
    of the Identity Service API's POST /validate/*/submitToken).

    Errors are that endpoint's (identity service v1.18): 400 M_TOKEN_INCORRECT,
    M_SESSION_EXPIRED, M_INVALID_PARAM. A wrong token counts against the session; the
    token is dead after MAX_FAILED_ATTEMPTS of them. Submitting the right token of a
    validated session again succeeds again.
    """
    if not SECRET_RE.fullmatch(sid) or not SECRET_RE.fullmatch(client_secret) or not token:
        raise MatrixError("M_INVALID_PARAM", "sid, client_secret and token are required")
    now = now_ms()
    with transaction.atomic():
        session = (
            ThreepidValidationSession.objects.select_for_update()
            .filter(sid=sid, client_secret=client_secret)
            .first()
        )
        if session is None:
            raise MatrixError("M_INVALID_PARAM", "Unknown validation session")
        if now - session.created_at_ms > SESSION_LIFETIME_MS:
            raise _expired("This validation session has expired; request a new one")
        if session.failed_attempts >= MAX_FAILED_ATTEMPTS:
            raise _expired("Too many wrong tokens; request a new one")
        if not hmac.compare_digest(session.token_hash, _hash(token)):
            session.failed_attempts += 1
            session.save(update_fields=["failed_attempts"])
            error = MatrixError("M_TOKEN_INCORRECT", "The token is incorrect")
        elif session.validated_at_ms is not None:
            return session
        elif now - session.sent_at_ms > TOKEN_LIFETIME_MS:
            raise _expired("This token has expired; request a new one")
        else:
            session.validated_at_ms = now
            session.save(update_fields=["validated_at_ms"])
            return session
    # Raised outside the block, so that the failed attempt stays counted.
    raise error


def safe_next_link(session: ThreepidValidationSession) -> str | None:
    """The session's next_link if it is an http(s) URL, to redirect to after success."""
    parsed = urlparse(session.next_link)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return session.next_link
    return None


# --- Spending a validated session ---------------------------------------------------------


def access_validated_session(
    sid: str, client_secret: str, purpose: str
) -> ThreepidValidationSession:
    """The validated, unexpired session of ``purpose``, or M_THREEPID_AUTH_FAILED."""
    session = ThreepidValidationSession.objects.filter(
        sid=sid, client_secret=client_secret, purpose=purpose
    ).first()
    if (
        session is None
        or session.validated_at_ms is None
        or now_ms() - session.created_at_ms > SESSION_LIFETIME_MS
    ):
        raise MatrixError(
            "M_THREEPID_AUTH_FAILED", "This third-party identifier has not been validated"
        )
    return session


def check_address_free(medium: str, address: str) -> None:
    if UserThreepid.objects.filter(medium=medium, address=address).exists():
        raise MatrixError("M_THREEPID_IN_USE", "This address is already in use")


def do_add_threepid(
    user: User, medium: str, address: str, *, validated_at_ms: int, notify: bool = True
) -> UserThreepid:
    """Make ``address`` one of ``user``'s; M_THREEPID_IN_USE if it is another's (or
    theirs already). ``notify``: mail the account's other addresses about it."""
    told = emails_of(user) if notify and medium == Medium.EMAIL else []
    try:
        with transaction.atomic():
            added = UserThreepid.objects.create(
                user=user,
                medium=medium,
                address=address,
                validated_at_ms=validated_at_ms,
                added_at_ms=now_ms(),
            )
    except IntegrityError:
        raise MatrixError("M_THREEPID_IN_USE", "This address is already in use") from None
    for to in told:
        mail.send_templated(to, "email_added", {"address": address, "user_id": user.user_id})
    return added


def do_add_from_session(
    user: User, session: ThreepidValidationSession, *, notify: bool = True
) -> UserThreepid:
    """Spend a validated session: its address becomes ``user``'s, the session is gone."""
    assert session.validated_at_ms is not None
    with transaction.atomic():
        added = do_add_threepid(
            user,
            session.medium,
            session.address,
            validated_at_ms=session.validated_at_ms,
            notify=notify,
        )
        ThreepidValidationSession.objects.filter(pk=session.pk).delete()
    return added


def do_forget_session(sid: str) -> None:
    """Spend a session whose work is done (a password reset): it cannot be replayed."""
    ThreepidValidationSession.objects.filter(sid=sid).delete()


def do_remove_threepid(user: User, medium: str, address: str) -> bool:
    """Remove one of ``user``'s addresses; whether there was one."""
    deleted, _ = UserThreepid.objects.filter(user=user, medium=medium, address=address).delete()
    return deleted > 0


def do_replace_threepids(user: User, wanted: list[tuple[str, str]]) -> None:
    """Make ``wanted`` (canonical medium, address pairs) the user's addresses exactly, as
    an operator sets them; an address of another user is M_THREEPID_IN_USE."""
    now = now_ms()
    with transaction.atomic():
        keep = set(wanted)
        for threepid in UserThreepid.objects.select_for_update().filter(user=user):
            if (threepid.medium, threepid.address) not in keep:
                threepid.delete()
        have = set(UserThreepid.objects.filter(user=user).values_list("medium", "address"))
        for medium, address in wanted:
            if (medium, address) not in have:
                do_add_threepid(user, medium, address, validated_at_ms=now, notify=False)
                have.add((medium, address))


def do_purge_expired_sessions() -> int:
    deleted, _ = ThreepidValidationSession.objects.filter(
        created_at_ms__lt=now_ms() - SESSION_LIFETIME_MS
    ).delete()
    return deleted


def notify_password_changed(user: User) -> None:
    """Tell the account's email addresses that its password was changed."""
    for to in emails_of(user):
        mail.send_templated(to, "password_changed", {"user_id": user.user_id})
