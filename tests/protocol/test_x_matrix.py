"""The X-Matrix Authorization header (server-server-api.md#request-authentication)."""

from __future__ import annotations

import pytest

from protocol.signing import (
    SignatureVerifyError,
    SigningKey,
    generate_signing_key,
    sign_json,
    signing_key_from_seed,
)
from protocol.unpadded_base64 import decode_base64
from protocol.x_matrix import (
    XMatrixAuthorization,
    XMatrixHeaderError,
    format_authorization,
    parse_authorization,
    request_json,
    sign_request,
    verify_request,
)

# The appendices' test key (content/appendices.md#cryptographic-test-vectors).
SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
ORIGIN = "origin.hs.example.com"
DESTINATION = "destination.hs.example.com"


@pytest.fixture
def key() -> SigningKey:
    return signing_key_from_seed(decode_base64(SEED), "key1")


class TestParsing:
    def test_the_spec_example(self) -> None:
        header = (
            'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",'
            'key="ed25519:key1",sig="ABCDEF..."'
        )
        assert parse_authorization(header) == XMatrixAuthorization(
            ORIGIN, DESTINATION, "ed25519:key1", "ABCDEF..."
        )

    def test_names_are_case_insensitive_and_order_does_not_matter(self) -> None:
        header = 'X-Matrix SIG="c2ln",Key="ed25519:a_b",Origin="a.example"'
        assert parse_authorization(header) == XMatrixAuthorization(
            "a.example", None, "ed25519:a_b", "c2ln"
        )

    def test_the_scheme_is_case_insensitive(self) -> None:
        assert parse_authorization('x-matrix origin=a.example,key="ed25519:1",sig=x').origin == (
            "a.example"
        )

    def test_spaces_and_tabs_around_commas_and_after_the_scheme(self) -> None:
        header = 'X-Matrix   origin="a.example" ,\tkey="ed25519:1"\t, sig="x"'
        assert parse_authorization(header).key_id == "ed25519:1"

    def test_unquoted_values_may_contain_colons(self) -> None:
        # "the recipient should allow colons to be included in values without requiring the
        # value to be enclosed in quotes"
        header = "X-Matrix origin=a.example:8448,destination=b.example:443,key=ed25519:1,sig=abc"
        auth = parse_authorization(header)
        assert (auth.origin, auth.destination, auth.key_id) == (
            "a.example:8448",
            "b.example:443",
            "ed25519:1",
        )

    def test_quoted_values_are_unescaped(self) -> None:
        header = r'X-Matrix origin="a.ex\ample",key="ed25519:1",sig="a\"b\\c"'
        auth = parse_authorization(header)
        assert auth.origin == "a.example"
        assert auth.signature == 'a"b\\c'

    def test_unknown_parameters_are_ignored(self) -> None:
        header = 'X-Matrix origin=a.example,future="x, y",key="ed25519:1",sig="s"'
        assert parse_authorization(header).signature == "s"

    @pytest.mark.parametrize(
        "header",
        [
            "",
            "Bearer abc",
            "X-Matrix",
            "X-Matrix ",
            'X-Matrix origin="a.example",key="ed25519:1"',  # no sig
            'X-Matrix key="ed25519:1",sig="s"',  # no origin
            'X-Matrix origin="a.example",sig="s"',  # no key
            'X-Matrix origin="a.example" key="ed25519:1",sig="s"',  # no comma
            'X-Matrix origin="a.example",,key="ed25519:1",sig="s"',
            'X-Matrix origin="a.example",key="ed25519:1",sig="s",',
            'X-Matrix origin="a.example,key="ed25519:1",sig="s"',  # unterminated quote
            'X-Matrix origin=a example,key="ed25519:1",sig="s"',
            'X-Matrix origin="a.example",origin="b.example",key="ed25519:1",sig="s"',
            'X-Matrix origin="not a server",key="ed25519:1",sig="s"',
            'X-Matrix origin="a.example",destination="b example",key="ed25519:1",sig="s"',
            'X-Matrix origin="a.example",key="rsa:1",sig="s"',
            'X-Matrix origin="a.example",key="ed25519:bad-version",sig="s"',
            'X-Matrix origin="a.example",key="ed25519",sig="s"',
            'X-Matrix origin="a.exa\x01mple",key="ed25519:1",sig="s"',
        ],
    )
    def test_malformed_headers_are_refused(self, header: str) -> None:
        with pytest.raises(XMatrixHeaderError):
            parse_authorization(header)

    def test_formatting_round_trips(self) -> None:
        auth = XMatrixAuthorization("a.example:8448", "b.example", "ed25519:k", 'x"y\\z')
        header = format_authorization(auth)
        assert header.startswith('X-Matrix origin="a.example:8448",destination="b.example",')
        assert parse_authorization(header) == auth


class TestSigning:
    def test_request_json_is_the_spec_object(self) -> None:
        assert request_json("POST", "/target", ORIGIN, DESTINATION, {"a": 1}) == {
            "method": "POST",
            "uri": "/target",
            "origin": ORIGIN,
            "destination": DESTINATION,
            "content": {"a": 1},
        }
        assert "content" not in request_json("GET", "/t", ORIGIN, DESTINATION)

    def test_sign_request_matches_the_spec_example_code(self, key: SigningKey) -> None:
        # The spec's authorization_headers(): sign_json over the request object, one header
        # per signature.
        signed = sign_json(
            request_json("POST", "/target", ORIGIN, DESTINATION, {"k": "v"}), ORIGIN, key
        )
        expected = signed["signatures"][ORIGIN]["ed25519:key1"]

        auth = sign_request(key, "POST", "/target", ORIGIN, DESTINATION, {"k": "v"})

        assert auth == XMatrixAuthorization(ORIGIN, DESTINATION, "ed25519:key1", expected)
        assert format_authorization(auth) == (
            f'X-Matrix origin="{ORIGIN}",destination="{DESTINATION}",'
            f'key="ed25519:key1",sig="{expected}"'
        )

    def test_a_signed_request_verifies(self, key: SigningKey) -> None:
        uri = "/_matrix/federation/v1/media/download/abc?timeout_ms=20000"
        auth = sign_request(key, "GET", uri, ORIGIN, DESTINATION)
        verify_request(auth, key.verify_key, "GET", uri, DESTINATION)

    def test_without_destination_param_the_own_name_was_signed(self, key: SigningKey) -> None:
        auth = sign_request(key, "GET", "/_matrix/x", ORIGIN, DESTINATION)
        old_style = XMatrixAuthorization(ORIGIN, None, auth.key_id, auth.signature)
        verify_request(old_style, key.verify_key, "GET", "/_matrix/x", DESTINATION)

    @pytest.mark.parametrize(
        ("method", "uri", "destination", "content"),
        [
            ("PUT", "/_matrix/x?a=1", DESTINATION, None),
            ("GET", "/_matrix/x?a=2", DESTINATION, None),
            ("GET", "/_matrix/x", DESTINATION, None),  # the query is signed too
            ("GET", "/_matrix/x?a=1", "other.example", None),
            ("GET", "/_matrix/x?a=1", DESTINATION, {}),
        ],
    )
    def test_anything_changed_breaks_the_signature(
        self, key: SigningKey, method: str, uri: str, destination: str, content: object
    ) -> None:
        auth = sign_request(key, "GET", "/_matrix/x?a=1", ORIGIN, DESTINATION)
        with pytest.raises(SignatureVerifyError):
            verify_request(auth, key.verify_key, method, uri, destination, content)

    def test_another_key_does_not_verify(self, key: SigningKey) -> None:
        auth = sign_request(key, "GET", "/_matrix/x", ORIGIN, DESTINATION)
        other = generate_signing_key("key1")
        with pytest.raises(SignatureVerifyError):
            verify_request(auth, other.verify_key, "GET", "/_matrix/x", DESTINATION)

    @pytest.mark.parametrize("signature", ["", "not base64!", "AAAA"])
    def test_garbage_signatures_do_not_verify(self, key: SigningKey, signature: str) -> None:
        auth = XMatrixAuthorization(ORIGIN, DESTINATION, "ed25519:key1", signature)
        with pytest.raises(SignatureVerifyError):
            verify_request(auth, key.verify_key, "GET", "/_matrix/x", DESTINATION)
