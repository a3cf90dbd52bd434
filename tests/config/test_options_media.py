"""The setting readers the media settings use (config/options.py)."""

from __future__ import annotations

import pytest

from config import options


def test_as_list_splits_on_commas_and_drops_blanks() -> None:
    assert options.as_list(" 10.0.0.0/8, ,fd00::/8 ,") == ["10.0.0.0/8", "fd00::/8"]
    assert options.as_list("") == []


def test_as_json_object_reads_an_object_or_falls_back() -> None:
    default = {"location": "/data/media"}

    assert options.as_json_object("", "X", default=default) is default
    assert options.as_json_object('{"bucket_name": "b"}', "X", default=default) == {
        "bucket_name": "b"
    }


@pytest.mark.parametrize("value", ["[1, 2]", "not json", '"text"'])
def test_as_json_object_refuses_anything_else(value: str) -> None:
    with pytest.raises(options.ConfigError, match="TRELLIS_MEDIA_STORAGE_OPTIONS"):
        options.as_json_object(value, "TRELLIS_MEDIA_STORAGE_OPTIONS", default={})


def test_media_settings_come_from_the_environment() -> None:
    values = options.load(
        {
            "TRELLIS_MAX_UPLOAD_SIZE": "1000",
            "TRELLIS_MEDIA_LEGACY_UNAUTHENTICATED": "on",
            "TRELLIS_URL_PREVIEW_IP_ALLOWLIST": "192.168.1.0/24",
        }
    )

    assert values["max_upload_size"] == "1000"
    assert values["media_legacy_unauthenticated"] == "on"
    assert values["url_preview_ip_allowlist"] == "192.168.1.0/24"
