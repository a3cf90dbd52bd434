"""Canonical JSON: content/appendices.md#canonical-json, including its worked examples."""

from __future__ import annotations

from types import MappingProxyType

import canonicaljson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.canonical_json import (
    CanonicalJSONError,
    check_canonical_json_values,
    encode_canonical_json,
    json_loads_strict,
)

# (input JSON text, expected canonical JSON) from appendices.md#examples
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {"medium": "email", "address": "john.doe@example.org"},
                        {"medium": "msisdn", "address": "123456789"}
                    ]
                }
            }
        }""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("source", "expected"), SPEC_EXAMPLES)
def test_spec_examples(source: str, expected: str) -> None:
    assert encode_canonical_json(json_loads_strict(source)) == expected.encode("utf-8")


def test_keys_sort_by_code_point_not_utf16() -> None:
    # U+FB01 sorts before U+1F600 by code point, but after it by UTF-16 code unit (0xD83D).
    encoded = encode_canonical_json({"\U0001f600": 1, "\ufb01": 2})
    assert encoded == '{"\ufb01":2,"\U0001f600":1}'.encode()


def test_escapes_only_quote_backslash_and_controls_with_lowercase_hex() -> None:
    value = {"s": 'q"b\\\b\t\n\f\r\x00\x1f\x7f é'}
    assert (
        encode_canonical_json(value)
        == ('{"s":"q\\"b\\\\\\b\\t\\n\\f\\r\\u0000\\u001f\x7f é"}').encode()
    )


def test_booleans_and_nested_arrays() -> None:
    assert encode_canonical_json([True, False, None, [1, [2]]]) == b"[true,false,null,[1,[2]]]"


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53) + 1, 0])
def test_integer_bounds_are_inclusive(value: int) -> None:
    assert encode_canonical_json({"n": value}) == f'{{"n":{value}}}'.encode()


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30])
def test_strict_rejects_out_of_range_integers(value: int) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"n": value})
    with pytest.raises(CanonicalJSONError):
        check_canonical_json_values([value])


def test_lenient_accepts_out_of_range_integers_and_floats() -> None:
    # Room versions 1..5 must not enforce strict canonical JSON.
    assert encode_canonical_json({"n": 2**53, "f": 1.5}, strict=False) == (
        b'{"f":1.5,"n":9007199254740992}'
    )


def test_strict_rejects_floats_even_integral_ones() -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"f": 1.0})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_always_rejected(value: float) -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json([value], strict=False)


def test_error_is_a_value_error() -> None:
    assert issubclass(CanonicalJSONError, ValueError)


def test_non_string_keys_are_rejected() -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({1: "a"})


def test_unencodable_types_are_rejected() -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"b": b"bytes"})
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"s": {1, 2}})


def test_lone_surrogates_are_rejected() -> None:
    with pytest.raises(CanonicalJSONError):
        encode_canonical_json({"s": "\ud800"})


def test_mappings_and_tuples_are_accepted() -> None:
    value = MappingProxyType({"b": (1, 2), "a": MappingProxyType({"z": 0})})
    assert encode_canonical_json(value) == b'{"a":{"z":0},"b":[1,2]}'


class TestJsonLoadsStrict:
    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_rejects_non_finite_constants(self, constant: str) -> None:
        with pytest.raises(CanonicalJSONError):
            json_loads_strict(f'{{"a": {constant}}}')

    def test_rejects_duplicate_keys(self) -> None:
        with pytest.raises(CanonicalJSONError, match="duplicate"):
            json_loads_strict('{"a": 1, "a": 2}')

    def test_rejects_duplicate_keys_in_nested_objects(self) -> None:
        with pytest.raises(CanonicalJSONError):
            json_loads_strict('{"x": [{"a": 1, "a": 1}]}')

    def test_rejects_numbers_outside_double_range(self) -> None:
        with pytest.raises(CanonicalJSONError):
            json_loads_strict("[1e400]")

    @pytest.mark.parametrize("text", ["{", "", "[1,]", b"\xff", '{"a": "\x01"}'])
    def test_rejects_malformed_input(self, text: str | bytes) -> None:
        with pytest.raises(CanonicalJSONError):
            json_loads_strict(text)

    def test_integral_exponent_and_fraction_numbers_become_ints(self) -> None:
        assert json_loads_strict("[1e10, 3.0, -2E2]") == [10_000_000_000, 3, -200]
        assert all(type(n) is int for n in json_loads_strict("[1e10, 3.0, -2E2]"))

    def test_real_fractions_stay_floats_and_fail_strict_encoding(self) -> None:
        value = json_loads_strict('{"f": 1.5, "big": 1e20}')
        assert value == {"f": 1.5, "big": 1e20}
        with pytest.raises(CanonicalJSONError):
            encode_canonical_json(value)

    def test_accepts_bytes(self) -> None:
        assert json_loads_strict('{"a": "é"}'.encode()) == {"a": "é"}


# Any JSON value a server may sign: strings over the whole of Unicode (controls, U+2028,
# astral), integers across the whole canonical range and beyond, nesting.
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=5
        )
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_bytes_are_those_of_the_reference_encoder(value: object) -> None:
    """The fast encoder (orjson) gives exactly the bytes of the canonicaljson library,
    which other servers sign with, for every value it takes (lenient: large integers
    too)."""
    assert encode_canonical_json(value, strict=False) == canonicaljson.encode_canonical_json(value)


@pytest.mark.parametrize("value", [1.5, 1e16, 0.1, -2.0, 123456789.125])
def test_floats_keep_the_reference_repr_in_lenient_encoding(value: float) -> None:
    """Room versions 1..5 may sign floats: their bytes are Python's repr, as the other
    servers' canonicaljson writes them."""
    assert encode_canonical_json({"f": value}, strict=False) == (
        canonicaljson.encode_canonical_json({"f": value})
    )
