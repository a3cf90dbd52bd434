"""Third-party identifiers end to end, through one real Trellis as its users meet it: the
homeserver, its identity service (which the clients name as ``id_server``, reached over
HTTPS at its federation listener), real mail to an SMTP server, and the identity
service's onbind notice travelling over TLS back to the homeserver, with certificate
checks on (a test authority of our own, TRELLIS_FEDERATION_CA_FILE).

Everything a client does here is a plain HTTP request; every mail is read from the SMTP
server and its link followed, as a person would.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from protocol.unpadded_base64 import encode_base64_url_safe
from tests.federation.ca import issue_certificate
from tests.live.conftest import (
    LiveServer,
    backend_environ,
    free_port,
    start_homeserver,
    stop_homeserver,
)
from tests.mail_sinks import SMTPSink, link_in, text_of

pytestmark = pytest.mark.live

MAIL_TIMEOUT_S = 60
SYNC_DEADLINE_S = 90


@dataclass
class Deployment:
    server: LiveServer
    id_server: str  # what clients name: the server's TLS listener, host:port
    tls: ssl.SSLContext  # trusts the test authority, as the clients' system would


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, smtp: SMTPSink) -> Iterator[Deployment]:
    data_dir: Path = tmp_path_factory.mktemp("identity-e2e")
    tls_port = free_port()
    issued = issue_certificate(data_dir, ["localhost", "127.0.0.1"])
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(
            data_dir,
            backend,
            server_name=f"localhost:{tls_port}",
            environ={
                "TRELLIS_FEDERATION_BIND": f"127.0.0.1:{tls_port}",
                "TRELLIS_TLS_CERT": str(issued.cert),
                "TRELLIS_TLS_KEY": str(issued.key),
                "TRELLIS_FEDERATION_CA_FILE": str(issued.ca_cert),
                "TRELLIS_FEDERATION_IP_ALLOWLIST": "127.0.0.0/8,::1/128",
                "TRELLIS_SMTP_HOST": "127.0.0.1",
                "TRELLIS_SMTP_PORT": str(smtp.port),
                "TRELLIS_SMTP_SECURITY": "none",
                "TRELLIS_EMAIL_FROM": "Trellis test <trellis@mail.test>",
            },
        )
        try:
            yield Deployment(
                server,
                f"localhost:{tls_port}",
                ssl.create_default_context(cafile=str(issued.ca_cert)),
            )
        finally:
            stop_homeserver(server)


# --- a client -------------------------------------------------------------------------------


def _request(
    url: str,
    method: str,
    body: Any = None,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        # Every error a client sees is a Matrix error (or, at 401, a User-Interactive
        # Authentication challenge).
        answer = json.loads(error.read())
        assert isinstance(answer.get("errcode"), str) or "flows" in answer, answer
        return error.code, answer


@dataclass
class User:
    deployment: Deployment
    user_id: str
    access_token: str
    password: str
    is_token: str = ""

    def client(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The Client-Server API of her homeserver, over its plain listener."""
        url = f"{self.deployment.server.url}/_matrix/client/v3/{path}"
        return _request(url, method, body, self.access_token)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.client(method, path, body)
        assert status == 200, (method, path, status, answer)
        return answer

    def identity(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The identity server she named, over HTTPS, with her identity access token."""
        url = f"https://{self.deployment.id_server}/_matrix/identity/v2/{path}"
        return _request(url, method, body, self.is_token or None, self.deployment.tls)

    def identity_ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.identity(method, path, body)
        assert status == 200, (method, path, status, answer)
        return answer


def register(deployment: Deployment, localpart: str) -> User:
    password = f"pw-{localpart}-e2e"
    url = f"{deployment.server.url}/_matrix/client/v3/register"
    body = {"username": localpart, "password": password, "auth": {"type": "m.login.dummy"}}
    status, answer = _request(url, "POST", body)
    assert status == 200, answer
    return User(deployment, answer["user_id"], answer["access_token"], password)


def register_at_identity_server(user: User) -> None:
    """OpenID token from the homeserver, exchanged for an identity access token; the
    identity server's terms accepted, if it has any."""
    openid = user.ok("POST", f"user/{quote(user.user_id)}/openid/request_token", {})
    assert openid["matrix_server_name"] == user.deployment.server.server_name
    user.is_token = user.identity_ok("POST", "account/register", openid)["token"]
    assert user.identity_ok("GET", "account")["user_id"] == user.user_id
    policies = user.identity_ok("GET", "terms")["policies"]
    urls = [
        translation["url"]
        for policy in policies.values()
        for language, translation in policy.items()
        if language != "version"
    ]
    if urls:
        user.identity_ok("POST", "terms", {"user_accepts": urls})


def follow(link: str, context: ssl.SSLContext) -> str:
    """Open a mail's link as a browser would; the page it shows."""
    with urllib.request.urlopen(link, timeout=60, context=context) as page:
        assert page.status == 200
        return str(page.read().decode())


def validate_at_identity_server(user: User, smtp: SMTPSink, address: str, count: int) -> str:
    """Prove ``address`` to the identity server through the link it mails (the
    ``count``-th mail to that address); the session's sid."""
    secret = f"secret-{user.user_id.split(':')[0][1:]}"
    sid = user.identity_ok(
        "POST",
        "validate/email/requestToken",
        {"client_secret": secret, "email": address, "send_attempt": 1},
    )["sid"]
    mail = smtp.wait_for(address, count=count, timeout=MAIL_TIMEOUT_S)
    follow(link_in(mail), user.deployment.tls)
    validated = user.identity_ok(
        "GET", f"3pid/getValidated3pid?sid={quote(sid)}&client_secret={secret}"
    )
    assert (validated["medium"], validated["address"]) == ("email", address)
    return sid


def bind_through_homeserver(user: User, sid: str) -> None:
    secret = f"secret-{user.user_id.split(':')[0][1:]}"
    user.ok(
        "POST",
        "account/3pid/bind",
        {
            "id_server": user.deployment.id_server,
            "id_access_token": user.is_token,
            "sid": sid,
            "client_secret": secret,
        },
    )


def lookup(user: User, address: str) -> str | None:
    """The hashed lookup a client makes (Identity Service API, "Client behaviour")."""
    details = user.identity_ok("GET", "hash_details")
    assert "sha256" in details["algorithms"]
    pepper = details["lookup_pepper"]
    key = encode_base64_url_safe(hashlib.sha256(f"{address} email {pepper}".encode()).digest())
    mappings = user.identity_ok(
        "POST", "lookup", {"addresses": [key], "algorithm": "sha256", "pepper": pepper}
    )["mappings"]
    mxid = mappings.get(key)
    return mxid if isinstance(mxid, str) else None


def invite_by_email(inviter: User, room_id: str, address: str) -> None:
    inviter.ok(
        "POST",
        f"rooms/{quote(room_id)}/invite",
        {
            "id_server": inviter.deployment.id_server,
            "id_access_token": inviter.is_token,
            "medium": "email",
            "address": address,
        },
    )


def wait_for_invite(user: User, room_id: str) -> list[dict[str, Any]]:
    """Poll /sync until the invite to ``room_id`` shows; its invite_state events."""
    deadline = time.monotonic() + SYNC_DEADLINE_S
    since = None
    while time.monotonic() < deadline:
        query = "timeout=5000" + (f"&since={quote(since)}" if since else "")
        answer = user.ok("GET", f"sync?{query}")
        since = answer["next_batch"]
        invited = answer.get("rooms", {}).get("invite", {})
        if room_id in invited:
            events: list[dict[str, Any]] = invited[room_id]["invite_state"]["events"]
            return events
    raise AssertionError(f"{user.user_id} saw no invite to {room_id} in {SYNC_DEADLINE_S} s")


def member_events(user: User, room_id: str, state_key: str) -> list[dict[str, Any]]:
    """The room's m.room.member events for ``state_key``, oldest first."""
    chunk = user.ok("GET", f"rooms/{quote(room_id)}/messages?dir=b&limit=100")["chunk"]
    return [
        event
        for event in reversed(chunk)
        if event["type"] == "m.room.member" and event["state_key"] == state_key
    ]


def add_email_to_account(user: User, smtp: SMTPSink, email: str, count: int) -> None:
    """POST /account/3pid/email/requestToken, the link in the homeserver's mail, then
    POST /account/3pid/add (authenticated again with her password)."""
    secret = f"account-{user.user_id.split(':')[0][1:]}"
    requested = user.ok(
        "POST",
        "account/3pid/email/requestToken",
        {"client_secret": secret, "email": email, "send_attempt": 1},
    )
    mail = smtp.wait_for(email.lower(), count=count, timeout=MAIL_TIMEOUT_S)
    link = link_in(mail)
    assert link.startswith(f"{user.deployment.server.url}/_trellis/client/threepid/submit_token?")
    assert "Address verified" in follow(link, user.deployment.tls)
    body: dict[str, Any] = {"client_secret": secret, "sid": requested["sid"]}
    status, challenge = user.client("POST", "account/3pid/add", body)
    assert status == 401, challenge
    body["auth"] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": user.password,
        "session": challenge["session"],
    }
    user.ok("POST", "account/3pid/add", body)


# --- the story ------------------------------------------------------------------------------


def test_binding_looking_up_and_inviting_by_email_through_our_own_identity_service(
    deployment: Deployment, smtp: SMTPSink
) -> None:
    # 1. Alice has an account and an identity access token.
    alice = register(deployment, "alice")
    register_at_identity_server(alice)

    # 2-3. She proves alice@example.org to the identity server and binds it through her
    # homeserver.
    alice_sid = validate_at_identity_server(alice, smtp, "alice@example.org", count=1)
    bind_through_homeserver(alice, alice_sid)

    # 4. Bob finds her by her address, and an invite by that address is a plain invite.
    bob = register(deployment, "bob")
    register_at_identity_server(bob)
    assert lookup(bob, "alice@example.org") == alice.user_id
    room_id = bob.ok("POST", "createRoom", {"name": "Garden"})["room_id"]
    invite_by_email(bob, room_id, "alice@example.org")
    invite_state = wait_for_invite(alice, room_id)
    (alice_invite,) = [e for e in invite_state if e.get("state_key") == alice.user_id]
    assert alice_invite["content"]["membership"] == "invite"
    assert "third_party_invite" not in alice_invite["content"]

    # 5. Carol's address is bound to nobody: the identity server mails her an invitation
    # and the room holds a third-party invite.
    invite_by_email(bob, room_id, "carol@example.org")
    state = bob.ok("GET", f"rooms/{quote(room_id)}/state")
    (third_party_invite,) = [e for e in state if e["type"] == "m.room.third_party_invite"]
    assert third_party_invite["sender"] == bob.user_id
    # The room's servers check the identity server's keys where it is: over HTTPS.
    for key in third_party_invite["content"]["public_keys"]:
        assert key["key_validity_url"].startswith(f"https://{deployment.id_server}/")
    invitation = text_of(smtp.wait_for("carol@example.org", count=1, timeout=MAIL_TIMEOUT_S))
    assert f'({bob.user_id}) invited you to the room "Garden"' in invitation
    assert third_party_invite["state_key"] in invitation

    # Carol signs up, proves the address and binds it: the identity server tells her
    # homeserver (PUT /3pid/onbind over TLS), which makes the invite.
    carol = register(deployment, "carol")
    register_at_identity_server(carol)
    carol_sid = validate_at_identity_server(carol, smtp, "carol@example.org", count=2)
    bind_through_homeserver(carol, carol_sid)
    wait_for_invite(carol, room_id)
    carol.ok("POST", f"join/{quote(room_id)}", {})

    invite, join = member_events(bob, room_id, carol.user_id)
    assert invite["sender"] == bob.user_id
    assert invite["content"]["membership"] == "invite"
    signed = invite["content"]["third_party_invite"]["signed"]
    assert signed["mxid"] == carol.user_id
    assert signed["token"] == third_party_invite["state_key"]
    assert deployment.id_server in signed["signatures"]
    assert join["content"]["membership"] == "join"

    # 6. Alice unbinds through her homeserver, which remembers where she bound it.
    answer = alice.ok(
        "POST", "account/3pid/unbind", {"medium": "email", "address": "alice@example.org"}
    )
    assert answer == {"id_server_unbind_result": "success"}
    assert lookup(bob, "alice@example.org") is None
    assert lookup(bob, "carol@example.org") == carol.user_id

    # 7. The homeserver's own flow: Alice adds the address to her account (the
    # homeserver mails the link itself) and logs in with it.
    add_email_to_account(alice, smtp, "Alice@Example.org", count=2)
    threepids = alice.ok("GET", "account/3pid")["threepids"]
    assert [(t["medium"], t["address"]) for t in threepids] == [("email", "alice@example.org")]
    url = f"{deployment.server.url}/_matrix/client/v3/login"
    identifier = {"type": "m.id.thirdparty", "medium": "email", "address": "alice@example.org"}
    status, login = _request(
        url,
        "POST",
        {"type": "m.login.password", "identifier": identifier, "password": alice.password},
    )
    assert status == 200, login
    assert login["user_id"] == alice.user_id
