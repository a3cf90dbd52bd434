"""User-Interactive Authentication (Client-Server API, "User-Interactive Authentication API").

An endpoint that needs UIA calls :func:`check_uia` with the ``auth`` dict of the
request and the flows it accepts. Until one flow is complete, ``check_uia`` raises
:class:`UIARequired`, which renders as the 401 UIA response. On success it returns
the completed :class:`UIASession`; the caller does its work and then calls
:func:`finish_uia`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from django.db import transaction

from accounts import selectors_threepids
from accounts.clock import now_ms
from accounts.models import Medium, UIASession, User
from accounts.services import passwords, registration_tokens, threepids
from protocol.errors import MatrixError

# A UIA session must finish within this time.
SESSION_LIFETIME_MS = 30 * 60 * 1000

DUMMY = "m.login.dummy"
PASSWORD = "m.login.password"
REGISTRATION_TOKEN = "m.login.registration_token"
EMAIL_IDENTITY = "m.login.email.identity"
MSISDN = "m.login.msisdn"

# Keys of ``UIASession.results`` besides stage results: the request's parameters as the
# session's first request gave them, and the user a completed registration created.
REQUEST = "request"
REGISTERED_USER = "registered_user_id"
# The result of a completed email or msisdn stage: the validated session's sid, medium,
# address and validated_at_ms (and, for a password reset, the user the address belongs to).
THREEPID = "threepid"

# What a validated 3PID session proves, by the endpoint (UIA session uri) spending it.
THREEPID_PURPOSES = {"register": threepids.REGISTER, "account/password": threepids.PASSWORD}
THREEPID_NOUNS = {Medium.EMAIL: "email address", Medium.MSISDN: "phone number"}


class UIARequired(MatrixError):
    """The 401 response of UIA: flows, params, session, completed, maybe an error."""

    def __init__(
        self,
        session: UIASession,
        flows: list[list[str]],
        params: dict[str, Any],
        stage_error: MatrixError | None = None,
    ) -> None:
        super().__init__(
            stage_error.errcode if stage_error else "M_UNAUTHORIZED",
            stage_error.error if stage_error else "User-interactive authentication required",
            status=401,
        )
        self.body: dict[str, Any] = {
            "flows": [{"stages": flow} for flow in flows],
            "params": params,
            "session": session.session_id,
        }
        # Optional in the spec, but always sent (as Synapse does) once a session exists,
        # so that clients need not tell "none completed" from "not said".
        self.body["completed"] = list(session.completed)
        if stage_error is not None:
            self.body["errcode"] = stage_error.errcode
            self.body["error"] = stage_error.error

    def to_dict(self) -> dict[str, Any]:
        return self.body


class NotTheSessionUser(MatrixError):
    """A stage authenticated, or tried to, as someone other than the user the request
    acts for. Synapse and sytest answer this with a plain 403, not the 401 of a failed
    stage: the caller holds a token of one user and credentials of another."""

    def __init__(self) -> None:
        super().__init__("M_FORBIDDEN", "Invalid auth: not the user making the request")


StageChecker = Callable[[dict[str, Any], UIASession], None]


def _check_dummy(auth: dict[str, Any], session: UIASession) -> None:
    return None


def _check_password(auth: dict[str, Any], session: UIASession) -> None:
    user = session.user
    if user is None:
        raise MatrixError("M_FORBIDDEN", "Password authentication needs a logged-in user")
    identified = passwords.resolve_login_identifier(auth)
    if identified is None:
        raise MatrixError("M_FORBIDDEN", "Invalid username or password")
    if identified != user.localpart:
        raise NotTheSessionUser()
    password = auth.get("password")
    if not isinstance(password, str) or not passwords.check_user_password(user, password):
        raise MatrixError("M_FORBIDDEN", "Invalid username or password")


def _check_registration_token(auth: dict[str, Any], session: UIASession) -> None:
    token = auth.get("token")
    if not isinstance(token, str) or not registration_tokens.do_reserve(token):
        raise MatrixError("M_UNAUTHORIZED", "Invalid registration token")
    session.results[REGISTRATION_TOKEN] = token


def _check_threepid(medium: str, auth: dict[str, Any], session: UIASession) -> None:
    """Client-Server API, "Email-based (identity / homeserver)" and "Phone
    number/MSISDN-based (identity / homeserver)": ``threepid_creds`` (or the older
    ``threePidCreds``) name a session of ``medium`` validated through this server, for
    the purpose of the endpoint the UIA session is for, and not expired."""
    creds = auth.get("threepid_creds", auth.get("threePidCreds"))
    if not isinstance(creds, dict):
        raise MatrixError("M_MISSING_PARAM", "Missing 'threepid_creds'", status=400)
    sid, client_secret = creds.get("sid"), creds.get("client_secret")
    if not isinstance(sid, str) or not isinstance(client_secret, str):
        raise MatrixError("M_BAD_JSON", "threepid_creds needs 'sid' and 'client_secret'")
    purpose = THREEPID_PURPOSES.get(session.uri)
    if purpose is None:
        raise MatrixError("M_UNRECOGNIZED", "Third-party authentication is not offered here")
    validated = threepids.access_validated_session(sid, client_secret, purpose)
    if validated.medium != medium:
        raise MatrixError(
            "M_THREEPID_AUTH_FAILED", f"This session validated no {THREEPID_NOUNS[medium]}"
        )
    result: dict[str, Any] = {
        "sid": validated.sid,
        "medium": validated.medium,
        "address": validated.address,
        "validated_at_ms": validated.validated_at_ms,
    }
    if purpose == threepids.REGISTER:
        # Taken by another account since the token was sent: say so now, not after
        # the client completed every other stage.
        threepids.check_address_free(validated.medium, validated.address)
    if purpose == threepids.PASSWORD:
        owner = selectors_threepids.owner_of(validated.medium, validated.address)
        if owner is None or not owner.is_active:
            raise MatrixError("M_THREEPID_NOT_FOUND", "No account has this address")
        if session.user is not None and session.user.pk != owner.pk:
            raise NotTheSessionUser()
        result["user_id"] = owner.user_id
    session.results[THREEPID] = result


def _check_email_identity(auth: dict[str, Any], session: UIASession) -> None:
    _check_threepid(Medium.EMAIL, auth, session)


def _check_msisdn(auth: dict[str, Any], session: UIASession) -> None:
    _check_threepid(Medium.MSISDN, auth, session)


STAGES: dict[str, StageChecker] = {
    DUMMY: _check_dummy,
    PASSWORD: _check_password,
    REGISTRATION_TOKEN: _check_registration_token,
    EMAIL_IDENTITY: _check_email_identity,
    MSISDN: _check_msisdn,
}


def _new_session(
    uri: str, user: User | None, flows: list[list[str]], remember: dict[str, Any] | None
) -> UIASession:
    return UIASession.objects.create(
        session_id=secrets.token_urlsafe(24),
        uri=uri,
        user=user,
        flows=flows,
        created_at_ms=now_ms(),
        results={REQUEST: remember} if remember else {},
    )


def find_session(auth: Any, *, uri: str) -> UIASession | None:
    """The unexpired session for ``uri`` that ``auth`` names, if there is one."""
    session_id = auth.get("session") if isinstance(auth, dict) else None
    if not isinstance(session_id, str):
        return None
    return UIASession.objects.filter(
        session_id=session_id, uri=uri, created_at_ms__gte=now_ms() - SESSION_LIFETIME_MS
    ).first()


def check_uia(
    auth: Any,
    *,
    uri: str,
    flows: list[list[str]],
    user: User | None = None,
    params: dict[str, Any] | None = None,
    remember: dict[str, Any] | None = None,
) -> UIASession:
    """Advance UIA with ``auth``; return the session once a flow is complete.

    ``remember``: request parameters kept with a session this call starts, for later
    requests of the session that send only ``auth`` (see :func:`find_session`)."""
    params = params or {}
    if auth is None:
        raise UIARequired(_new_session(uri, user, flows, remember), flows, params)
    if not isinstance(auth, dict):
        raise MatrixError("M_BAD_JSON", "'auth' must be an object")
    session_id = auth.get("session")
    with transaction.atomic():
        if session_id is None:
            session = _new_session(uri, user, flows, remember)
        else:
            if not isinstance(session_id, str):
                raise MatrixError("M_BAD_JSON", "'session' must be a string")
            session = _live_session(session_id)
            if session.uri != uri or session.user_id != (user.pk if user else None):
                raise MatrixError(
                    "M_FORBIDDEN",
                    "Requested operation has changed during the UI authentication session",
                )
        stage_error = _run_stage(auth, session, flows)
        session.save()
    if stage_error is not None:
        raise UIARequired(session, flows, params, stage_error)
    done = set(session.completed)
    if any(set(flow) <= done for flow in flows):
        return session
    raise UIARequired(session, flows, params)


def _live_session(session_id: str) -> UIASession:
    """The session, locked for update; 400 M_UNKNOWN if it is unknown or expired."""
    found = UIASession.objects.select_for_update().filter(session_id=session_id).first()
    if found is None or now_ms() - found.created_at_ms > SESSION_LIFETIME_MS:
        raise MatrixError("M_UNKNOWN", "Unknown or expired UIA session", status=400)
    return found


def session_for_fallback(session_id: str, stage: str) -> UIASession:
    """The session a fallback page completes ``stage`` of, checked to offer that stage."""
    session = UIASession.objects.select_related("user").filter(session_id=session_id).first()
    if session is None or now_ms() - session.created_at_ms > SESSION_LIFETIME_MS:
        raise MatrixError("M_UNKNOWN", "Unknown or expired UIA session", status=400)
    if stage not in {s for flow in session.flows for s in flow}:
        raise MatrixError("M_UNRECOGNIZED", f"This session does not offer {stage!r}", status=400)
    return session


def do_complete_stage_by_fallback(session_id: str, auth: dict[str, Any]) -> MatrixError | None:
    """Run one stage of a session out of band, from its fallback page (Client-Server API,
    "Fallback"); the client then resubmits its request with just the session ID.

    Returns the stage's error, if it failed; the session is unchanged then.
    """
    with transaction.atomic():
        session = _live_session(session_id)
        stage_error = _run_stage(auth, session, session.flows)
        if stage_error is None:
            session.save()
    return stage_error


def _run_stage(
    auth: dict[str, Any], session: UIASession, flows: list[list[str]]
) -> MatrixError | None:
    """Run the stage named by ``auth["type"]``, if any; return its error, if it failed."""
    stage = auth.get("type")
    if stage is None:
        return None
    allowed = {s for flow in flows for s in flow}
    checker = STAGES.get(stage) if isinstance(stage, str) else None
    if checker is None or stage not in allowed:
        return MatrixError("M_UNRECOGNIZED", f"Unsupported authentication type {stage!r}")
    if stage in session.completed:
        # "Completed stages cannot be retried by clients": running one again could
        # have side effects, e.g. reserve a second use of a registration token.
        return None
    try:
        checker(auth, session)
    except NotTheSessionUser:
        raise
    except MatrixError as error:
        return error
    if stage not in session.completed:
        session.completed.append(stage)
    return None


def finish_uia(session: UIASession) -> None:
    """Forget a session whose operation has been performed: it cannot be replayed."""
    UIASession.objects.filter(pk=session.pk).delete()


def do_record_registration(session: UIASession, user: User) -> None:
    """Keep a completed registration session until it expires, naming the user it
    created, so that a retry with it is answered as the first completion was. The
    registration token's use is final now: purging the session must not release it."""
    results = dict(session.results)
    results.pop(REGISTRATION_TOKEN, None)
    results[REGISTERED_USER] = user.user_id
    UIASession.objects.filter(pk=session.pk).update(results=results)


def do_purge_expired_sessions() -> int:
    """Forget sessions past their lifetime, releasing the registration token uses they
    reserved for a registration that never finished."""
    with transaction.atomic():
        expired = UIASession.objects.select_for_update().filter(
            created_at_ms__lt=now_ms() - SESSION_LIFETIME_MS
        )
        for results in expired.values_list("results", flat=True):
            token = results.get(REGISTRATION_TOKEN) if isinstance(results, dict) else None
            if token:
                registration_tokens.do_release(token)
        deleted, _ = expired.delete()
    return deleted
