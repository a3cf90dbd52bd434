"""No log line shows a secret sent in a query string (config/redact.py)."""

from __future__ import annotations

import io
import logging

import pytest

from config.http_server import RedactingAccessLog
from config.redact import RedactQuerySecrets, redact_uri


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            "/_matrix/client/v3/sync?access_token=syt_abc&timeout=30000",
            "/_matrix/client/v3/sync?access_token=<redacted>&timeout=30000",
        ),
        (
            "GET /_matrix/client/v3/sync?since=s1&access_token=syt_abc",
            "GET /_matrix/client/v3/sync?since=s1&access_token=<redacted>",
        ),
        # Names as the server decodes them: percent-encoded or in capitals.
        ("/x?access%5Ftoken=syt_abc", "/x?access%5Ftoken=<redacted>"),
        ("/x?ACCESS_TOKEN=syt_abc", "/x?ACCESS_TOKEN=<redacted>"),
        # Other secrets the API takes in a query.
        (
            "/_matrix/client/v1/register/m.login.registration_token/validity?token=abcd",
            "/_matrix/client/v1/register/m.login.registration_token/validity?token=<redacted>",
        ),
        (
            "/submit?sid=1&client_secret=s3cr3t&token=123",
            "/submit?sid=1&client_secret=<redacted>&token=<redacted>",
        ),
        ("/login?loginToken=abc", "/login?loginToken=<redacted>"),
        # Everything else is kept as it was.
        (
            "/_matrix/client/v3/sync?since=s1&timeout=0",
            "/_matrix/client/v3/sync?since=s1&timeout=0",
        ),
        ("/_matrix/client/v3/sync", "/_matrix/client/v3/sync"),
        ("/x?my_access_token=1&tokens=2", "/x?my_access_token=1&tokens=2"),
        # A message with a URI in it.
        (
            'fetching "http://hs/_matrix/x?access_token=abc" failed',
            'fetching "http://hs/_matrix/x?access_token=<redacted>" failed',
        ),
    ],
)
def test_secret_query_parameters_are_redacted(text: str, redacted: str) -> None:
    assert redact_uri(text) == redacted


def test_the_access_log_redacts_the_request_uri() -> None:
    stream = io.StringIO()
    log = RedactingAccessLog(stream)

    log(
        "http",
        "complete",
        {
            "path": "/_matrix/client/v3/account/whoami?access_token=syt_secret",
            "status": 200,
            "method": "GET",
            "client": "203.0.113.7:0",
            "time_taken": 0.01,
            "size": 42,
        },
    )

    line = stream.getvalue()
    assert "syt_secret" not in line
    assert line.startswith("203.0.113.7:0 - - [")
    assert '"GET /_matrix/client/v3/account/whoami?access_token=<redacted>" 200 42' in line


def test_log_records_are_redacted_by_the_console_handler() -> None:
    # config/settings.py's LOGGING puts the filter on the handler every logger reaches.
    handlers = [h for h in logging.getLogger().handlers if h.name == "console"]
    assert handlers
    assert any(isinstance(f, RedactQuerySecrets) for f in handlers[0].filters)

    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/x?token=abc",), None
    )
    assert RedactQuerySecrets().filter(record)
    assert record.getMessage() == "Not Found: /x?token=<redacted>"

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactQuerySecrets())
    logger = logging.getLogger("tests.redact")
    logger.addHandler(handler)
    try:
        logger.warning("GET %s", "/sync?access_token=syt_abc")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "GET /sync?access_token=<redacted>\n"


def test_a_mail_written_to_the_log_keeps_its_link(caplog: pytest.LogCaptureFixture) -> None:
    # Without TRELLIS_SMTP_HOST a mail goes to the log so that its link can be opened
    # (README, "Email and 3PIDs"); a redacted link would be of no use.
    from django.core.mail import EmailMessage

    from config.mail_backend import LogEmailBackend

    link = "https://hs.test/_trellis/client/threepid/submit_token?sid=s1&client_secret=cs&token=t0"
    caplog.set_level(logging.WARNING, logger="trellis.mail")
    LogEmailBackend().send_messages([EmailMessage("Confirm", f"Open {link}\n", to=["a@b.org"])])
    [record] = [r for r in caplog.records if r.name == "trellis.mail"]

    assert RedactQuerySecrets().filter(record)
    assert link in record.getMessage()
    # Any other record with the same URI is still redacted.
    other = logging.LogRecord("django.request", logging.WARNING, __file__, 1, link, None, None)
    RedactQuerySecrets().filter(other)
    assert "client_secret=<redacted>&token=<redacted>" in other.getMessage()
