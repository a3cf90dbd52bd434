"""3PID helpers of the Identity Service API against the spec's own examples."""

from __future__ import annotations

import pytest

from protocol.threepids import canonical_email, is_opaque_id, lookup_hash, redacted_email


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # identity-service-api.md, "sha256", with the pepper "matrixrocks".
        (("alice@example.com", "email"), "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc"),
        (("bob@example.com", "email"), "LJwSazmv46n0hlMlsb_iYxI0_HXEqy_yj6Jm636cdT8"),
        (("18005552067", "msisdn"), "nlo35_T5fzSGZzJApqu8lgIudJvmOQtDaHtr-I4rU7I"),
    ],
)
def test_lookup_hashes_are_the_spec_examples(query: tuple[str, str], expected: str) -> None:
    assert lookup_hash(*query, "matrixrocks") == expected


def test_emails_are_case_folded_whole() -> None:
    # appendices.md, "E-Mail": Strauß@Example.com is strauss@example.com.
    assert canonical_email("Strauß@Example.com") == "strauss@example.com"


@pytest.mark.parametrize(
    "text",
    ["", "alice", "alice@", "@example.org", "a b@example.org", "<a@example.org>", "a@localhost"],
)
def test_what_is_not_an_email(text: str) -> None:
    assert canonical_email(text) is None


def test_client_secret_grammar() -> None:
    assert is_opaque_id("monkeys_are_GREAT.=-0")
    assert not is_opaque_id("")
    assert not is_opaque_id("x" * 256)
    assert not is_opaque_id("no spaces")
    assert not is_opaque_id("slash/")


def test_redacted_display_name_is_the_spec_form() -> None:
    assert redacted_email("foo@bar.com") == "f...@b..."
