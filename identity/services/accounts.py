"""Accounts of the identity service: access tokens for OpenID-proven Matrix users, and the
terms they accepted (identity-service-api.md, "Authentication", "Terms of service")."""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from accounts.services.openid import openid_token_owner
from accounts.tokens import token_digest
from federation import client
from identity.models import AcceptedTerms, IdentityToken
from protocol.errors import MatrixError
from protocol.identifiers import is_valid_server_name, parse_user_id

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "mis_"
USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"


def unauthorized(error: str = "Unrecognised access token") -> MatrixError:
    return MatrixError("M_UNAUTHORIZED", error, status=401)


def _openid_subject(access_token: str, matrix_server_name: str) -> str:
    """The user ID the homeserver ``matrix_server_name`` says ``access_token`` belongs to.

    Our own server is asked without HTTP; another is asked at its federation endpoint
    (server-server-api.md, "OpenID") through the federation client, with its discovery,
    address checks and TLS settings.
    """
    if matrix_server_name == settings.SERVER_NAME:
        try:
            return openid_token_owner(access_token)
        except MatrixError:
            raise unauthorized("The OpenID token is unknown or expired") from None
    path = f"{USERINFO_PATH}?access_token={quote(access_token, safe='')}"
    try:
        answer = client.request_json(matrix_server_name, "GET", path, signed=False)
    except client.FederationError as exc:
        logger.info("OpenID check at %s failed: %s", matrix_server_name, exc)
        raise unauthorized(f"{matrix_server_name} did not confirm the OpenID token") from None
    subject = answer.get("sub") if isinstance(answer, dict) else None
    if not isinstance(subject, str):
        raise unauthorized(f"{matrix_server_name} answered without a user ID")
    return subject


def do_register(access_token: str, matrix_server_name: str) -> str:
    """POST /account/register: exchange an OpenID token for an identity access token.

    The user ID the homeserver vouches for must be one of its own users.
    """
    if not is_valid_server_name(matrix_server_name):
        raise MatrixError("M_INVALID_PARAM", "matrix_server_name is not a server name")
    subject = _openid_subject(access_token, matrix_server_name)
    try:
        if parse_user_id(subject).domain != matrix_server_name:
            raise ValueError("user of another server")
    except ValueError:
        raise unauthorized(
            f"{matrix_server_name} vouched for {subject!r}, which is not one of its users"
        ) from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    IdentityToken.objects.create(
        token_hash=token_digest(token), user_id=subject, created_at_ms=now_ms()
    )
    return token


def account_for_token(token: str) -> IdentityToken | None:
    return IdentityToken.objects.filter(token_hash=token_digest(token)).first()


def do_logout(account: IdentityToken) -> None:
    """POST /account/logout: the token is gone."""
    IdentityToken.objects.filter(pk=account.pk).delete()


# --- terms ------------------------------------------------------------------------------


def policies() -> dict[str, Any]:
    return dict(settings.IDENTITY_TERMS)


def _policy_urls(policy: dict[str, Any]) -> set[str]:
    return {
        str(translation["url"])
        for language, translation in policy.items()
        if language != "version" and isinstance(translation, dict) and "url" in translation
    }


def check_terms_signed(user_id: str) -> None:
    """403 M_TERMS_NOT_SIGNED unless the user accepted every policy, in any of its
    languages (the spec: acceptance of one language's URL is acceptance of the policy)."""
    configured = policies()
    if not configured:
        return
    accepted = set(AcceptedTerms.objects.filter(user_id=user_id).values_list("url", flat=True))
    for policy in configured.values():
        if isinstance(policy, dict) and not (_policy_urls(policy) & accepted):
            raise MatrixError(
                "M_TERMS_NOT_SIGNED",
                "Please accept our updated terms of service before continuing",
                status=403,
            )


def do_accept_terms(user_id: str, urls: list[str]) -> None:
    """POST /terms: add to what the user accepted (never replaces earlier acceptances).

    Only URLs of the configured policies are kept; others mean nothing here.
    """
    known = set().union(*(_policy_urls(p) for p in policies().values() if isinstance(p, dict)))
    for url in dict.fromkeys(u for u in urls if u in known):
        try:
            with transaction.atomic():
                AcceptedTerms.objects.get_or_create(user_id=user_id, url=url)
        except IntegrityError:
            # Accepted by a concurrent request: what we wanted.
            pass
