"""A user's addresses at identity servers: binding through this homeserver, unbinding,
and removing an address from the account (Client-Server API, "Adding Account
Administrative Contact Information": /account/3pid/bind, /unbind, /delete).

The homeserver records each identity server it bound an address at
(ThreepidIdServerBinding), so that removing the address, or the account, can unbind it
there again without the client naming the server. Identity servers are called with no
database transaction open (accounts.services.identity_client).
"""

from __future__ import annotations

import logging

from accounts.models import Medium, ThreepidIdServerBinding, User, UserThreepid
from accounts.services import identity_client, threepids
from protocol.errors import invalid_param

logger = logging.getLogger(__name__)

SUCCESS, NO_SUPPORT = "success", "no-support"


def check_medium(medium: str) -> str:
    if medium not in Medium.values:
        raise invalid_param(f"Unknown medium {medium!r}: expected one of {Medium.values}")
    return medium


def canonical_address(medium: str, address: str) -> str:
    """Email addresses are kept in lower case (UserThreepid's canonical form)."""
    return address.strip().lower() if medium == Medium.EMAIL else address.strip()


def do_bind_threepid(
    user: User, *, id_server: str, id_access_token: str, sid: str, client_secret: str
) -> None:
    """Bind the address the identity server validated in session ``sid`` to ``user`` there,
    and remember the identity server for a later unbind."""
    server = identity_client.identity_server(id_server)
    bound = identity_client.bind(
        server, id_access_token, sid=sid, client_secret=client_secret, mxid=user.user_id
    )
    ThreepidIdServerBinding.objects.get_or_create(
        user=user,
        medium=bound.medium,
        address=canonical_address(bound.medium, bound.address),
        id_server=server.name,
    )


def do_add_validated_elsewhere(
    user: User, *, id_server: str, id_access_token: str, sid: str, client_secret: str
) -> None:
    """The deprecated POST /account/3pid: the address an identity server validated in
    session ``sid`` becomes one of ``user``'s (it is not bound there: the spec removed
    ``bind`` from this endpoint). M_THREEPID_AUTH_FAILED when the identity server has not
    validated the session; M_THREEPID_IN_USE when the address is another account's."""
    server = identity_client.identity_server(id_server)
    validated = identity_client.validated_threepid(
        server, id_access_token, sid=sid, client_secret=client_secret
    )
    medium = check_medium(validated.medium)
    threepids.do_add_threepid(
        user,
        medium,
        canonical_address(medium, validated.address),
        validated_at_ms=validated.validated_at_ms,
    )


def do_unbind_threepid(user: User, medium: str, address: str, id_server: str | None) -> str:
    """Unbind the address from ``id_server``, or from every identity server it was bound
    at through us; ``success`` when each did, ``no-support`` when one would not or none is
    known (the Client-Server API's ``id_server_unbind_result``). An identity server that
    cannot be reached is a 502 and keeps its record, so the unbind can be tried again."""
    address = canonical_address(check_medium(medium), address)
    recorded = ThreepidIdServerBinding.objects.filter(user=user, medium=medium, address=address)
    if id_server is not None:
        servers = [identity_client.identity_server(id_server).name]
    else:
        servers = list(recorded.values_list("id_server", flat=True))
    if not servers:
        return NO_SUPPORT
    result = SUCCESS
    for name in servers:
        unbound = identity_client.unbind(
            identity_client.identity_server(name),
            mxid=user.user_id,
            medium=medium,
            address=address,
        )
        if not unbound:
            result = NO_SUPPORT
        # Synapse's practice: once the identity server has answered, the record goes
        # whatever it said (it no longer holds the binding, or never will unbind it).
        recorded.filter(id_server=name).delete()
    return result


def do_delete_threepid(user: User, medium: str, address: str, id_server: str | None) -> str:
    """Remove the address from the account, after unbinding it from the identity servers
    (``do_unbind_threepid``; an unreachable one keeps the address on the account). An
    address the account does not have is no error: the unbind is still made."""
    address = canonical_address(check_medium(medium), address)
    result = do_unbind_threepid(user, medium, address, id_server)
    UserThreepid.objects.filter(user=user, medium=medium, address=address).delete()
    return result


def do_unbind_all(user: User, id_server: str | None = None) -> str:
    """Account deactivation: unbind every address bound through us (from ``id_server``
    when the client names one), best effort. An identity server that cannot be reached
    does not stop the deactivation; the result is then ``no-support``."""
    result = SUCCESS
    pairs = set(ThreepidIdServerBinding.objects.filter(user=user).values_list("medium", "address"))
    for medium, address in sorted(pairs):
        try:
            if do_unbind_threepid(user, medium, address, id_server) != SUCCESS:
                result = NO_SUPPORT
        except identity_client.IdentityServerError as exc:
            logger.warning("deactivating %s: unbinding %s failed: %s", user.user_id, address, exc)
            result = NO_SUPPORT
    return result
