"""Room version records: content/rooms/_index.md and content/rooms/v1.md .. v12.md."""

from __future__ import annotations

import dataclasses

import pytest

from protocol.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    EventFormatVersion,
    RoomDisposition,
    RoomVersion,
    RoomVersions,
    StateResolutionVersion,
    get_room_version,
    is_valid_room_version_identifier,
)

ALL = [str(n) for n in range(1, 13)]


def versions_with(flag: str) -> list[str]:
    return [v for v in ALL if getattr(KNOWN_ROOM_VERSIONS[v], flag)]


def test_known_versions_are_exactly_1_to_12() -> None:
    assert list(KNOWN_ROOM_VERSIONS) == ALL
    for identifier, version in KNOWN_ROOM_VERSIONS.items():
        assert version.identifier == identifier


def test_known_versions_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        KNOWN_ROOM_VERSIONS["13"] = RoomVersions.V12  # type: ignore[index]


def test_room_versions_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RoomVersions.V1.knock_join_rule = True  # type: ignore[misc]


def test_default_is_12_as_the_spec_recommends() -> None:
    # _index.md: "Servers SHOULD use room version 12 as the default room version".
    assert DEFAULT_ROOM_VERSION is KNOWN_ROOM_VERSIONS["12"]


def test_every_listed_version_is_stable() -> None:
    for version in KNOWN_ROOM_VERSIONS.values():
        assert version.disposition is RoomDisposition.STABLE
        assert version.is_stable


def test_named_access_matches_mapping() -> None:
    for identifier in ALL:
        assert getattr(RoomVersions, f"V{identifier}") is KNOWN_ROOM_VERSIONS[identifier]


def test_lookup() -> None:
    assert get_room_version("9") is RoomVersions.V9
    assert get_room_version("13") is None
    assert get_room_version("org.example.custom") is None


def test_event_formats() -> None:
    formats = {v: KNOWN_ROOM_VERSIONS[v].event_format for v in ALL}
    assert formats == {
        "1": EventFormatVersion.V1,
        "2": EventFormatVersion.V1,
        "3": EventFormatVersion.V2,
        **{v: EventFormatVersion.V3 for v in ALL[3:]},
    }
    assert EventFormatVersion.V1.event_id_in_pdu
    assert EventFormatVersion.V1.event_references_are_pairs
    assert not EventFormatVersion.V2.event_id_in_pdu
    assert not EventFormatVersion.V2.event_id_url_safe_base64
    assert EventFormatVersion.V3.event_id_url_safe_base64


def test_state_resolution_algorithms() -> None:
    assert RoomVersions.V1.state_res is StateResolutionVersion.V1
    for v in ALL[1:11]:
        assert KNOWN_ROOM_VERSIONS[v].state_res is StateResolutionVersion.V2
    assert RoomVersions.V12.state_res is StateResolutionVersion.V2_1


# Which versions have each flag, read off the per-version spec pages.
FLAG_TABLE = {
    "redaction_auth_rule": ["1", "2"],
    "enforce_key_validity": ALL[4:],
    "special_case_aliases_auth": ["1", "2", "3", "4", "5"],
    "strict_canonical_json": ALL[5:],
    "limit_notifications_power_levels": ALL[5:],
    "knock_join_rule": ALL[6:],
    "restricted_join_rule": ALL[7:],
    "restricted_join_rule_fix": ALL[8:],
    "knock_restricted_join_rule": ALL[9:],
    "enforce_int_power_levels": ALL[9:],
    "implicit_room_creator": ["11", "12"],
    "updated_redaction_rules": ["11", "12"],
    "redacts_in_content": ["11", "12"],
    "room_id_is_create_event_hash": ["12"],
    "creators_have_infinite_power": ["12"],
}


@pytest.mark.parametrize(("flag", "expected"), FLAG_TABLE.items())
def test_flag_table(flag: str, expected: list[str]) -> None:
    assert versions_with(flag) == expected


def test_every_boolean_flag_is_in_the_table() -> None:
    flags = {f.name for f in dataclasses.fields(RoomVersion) if f.type in ("bool", bool)}
    assert flags == set(FLAG_TABLE)


def test_feature_matrix_from_rooms_index() -> None:
    # _index.md#feature-matrix
    assert versions_with("knock_join_rule") == ["7", "8", "9", "10", "11", "12"]
    assert versions_with("restricted_join_rule") == ["8", "9", "10", "11", "12"]
    assert versions_with("knock_restricted_join_rule") == ["10", "11", "12"]
    assert versions_with("creators_have_infinite_power") == ["12"]


def test_derived_properties() -> None:
    assert versions_with("create_event_in_auth_events") == ALL[:11]
    assert versions_with("power_levels_accept_floats") == ALL[:5]
    assert versions_with("power_levels_accept_strings") == ALL[:9]


@pytest.mark.parametrize(
    ("identifier", "valid"),
    [
        ("1", True),
        ("1.2-beta", True),
        ("com.example.version", True),
        ("", False),
        ("A", False),
        ("a_b", False),
        ("x" * 32, True),
        ("x" * 33, False),
    ],
)
def test_room_version_grammar(identifier: str, valid: bool) -> None:
    assert is_valid_room_version_identifier(identifier) is valid
