"""The federation settings' readers (config/options.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import options

NAME = "TRELLIS_FEDERATION_URL_OVERRIDES"


def test_url_overrides_map_server_names_to_base_urls() -> None:
    value = '{"localhost:18228": "http://127.0.0.1:18228/", "peer.example": "https://10.0.0.2"}'
    assert options.as_url_overrides(value, NAME) == {
        "localhost:18228": "http://127.0.0.1:18228",
        "peer.example": "https://10.0.0.2",
    }
    assert options.as_url_overrides("", NAME) == {}


@pytest.mark.parametrize(
    "value",
    [
        '{"a.example": "ftp://host"}',
        '{"a.example": "http://host/path"}',
        '{"a.example": "http://host?x=1"}',
        '{"a.example": "host:8448"}',
        '{"a.example": 8448}',
        '["a.example"]',
    ],
)
def test_url_overrides_refuse_anything_but_base_urls(value: str) -> None:
    with pytest.raises(options.ConfigError, match=NAME):
        options.as_url_overrides(value, NAME)


def test_a_config_file_may_give_the_overrides_as_a_mapping(tmp_path: Path) -> None:
    config = tmp_path / "trellis.yaml"
    config.write_text(
        "federation_url_overrides:\n  localhost:18228: http://127.0.0.1:18228\n"
        "federation_key_notaries: matrix.org\n"
    )
    values = options.load({"TRELLIS_CONFIG": str(config)})
    assert options.as_url_overrides(values["federation_url_overrides"], NAME) == {
        "localhost:18228": "http://127.0.0.1:18228"
    }
    assert options.as_list(values["federation_key_notaries"]) == ["matrix.org"]


def test_ip_allowlists_are_networks() -> None:
    name = "TRELLIS_FEDERATION_IP_ALLOWLIST"
    assert options.as_networks("10.0.0.0/8, fd00::/8,127.0.0.1", name) == [
        "10.0.0.0/8",
        "fd00::/8",
        "127.0.0.1",
    ]
    with pytest.raises(options.ConfigError, match=name):
        options.as_networks("10.0.0.0/8,intranet", name)
