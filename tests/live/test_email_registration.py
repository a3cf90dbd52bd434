"""Registration that requires an email address, against a real homeserver process that
sends real mail: its Celery worker delivers to an SMTP server (aiosmtpd) on loopback,
and the test follows the link in the mail over HTTP, as a person's browser would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import LiveServer, backend_environ, start_homeserver, stop_homeserver
from tests.mail_sinks import SMTPSink, link_in

pytestmark = pytest.mark.live

SECRET = "live-secret-1"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def mailing_homeserver(
    tmp_path_factory: pytest.TempPathFactory, smtp: SMTPSink
) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("mailing")
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(
            data_dir,
            backend,
            environ={
                "TRELLIS_SMTP_HOST": "127.0.0.1",
                "TRELLIS_SMTP_PORT": str(smtp.port),
                "TRELLIS_SMTP_SECURITY": "none",
                "TRELLIS_EMAIL_FROM": "Trellis test <trellis@mail.test>",
                "TRELLIS_REGISTRATION_REQUIRES_EMAIL": "on",
            },
        )
        try:
            yield server
        finally:
            stop_homeserver(server)


def call(server: LiveServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_registering_with_the_link_from_a_real_mail(
    mailing_homeserver: LiveServer, smtp: SMTPSink
) -> None:
    server = mailing_homeserver
    body = {"username": "mailed", "password": "pw-mailed-1"}
    status, challenge = call(server, "POST", "register", body)
    assert status == 401, challenge
    assert challenge["flows"] == [{"stages": ["m.login.email.identity"]}]

    status, requested = call(
        server,
        "POST",
        "register/email/requestToken",
        {"client_secret": SECRET, "email": "Mailed@Example.org", "send_attempt": 1},
    )
    assert status == 200, requested

    message = smtp.wait_for("mailed@example.org", timeout=60)
    assert message["From"] == "Trellis test <trellis@mail.test>"
    link = link_in(message)
    assert link.startswith(f"{server.url}/_trellis/client/threepid/submit_token?")
    with urllib.request.urlopen(link, timeout=30) as page:
        assert page.status == 200
        assert "Address verified" in page.read().decode()

    auth = {
        "type": "m.login.email.identity",
        "threepid_creds": {"sid": requested["sid"], "client_secret": SECRET},
        "session": challenge["session"],
    }
    status, registered = call(server, "POST", "register", {**body, "auth": auth})
    assert status == 200, registered
    assert registered["user_id"] == server.user_id("mailed")

    status, login = call(
        server,
        "POST",
        "login",
        {
            "type": "m.login.password",
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "mailed@example.org",
            },
            "password": "pw-mailed-1",
        },
    )
    assert status == 200, login
    assert login["user_id"] == server.user_id("mailed")
