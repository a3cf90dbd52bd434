"""Operator settings: environment variables, optionally backed by a config file.

Every setting has an environment variable (``TRELLIS_*``, ``DATABASE_URL``,
``REDIS_URL``). ``TRELLIS_CONFIG`` may name a YAML or TOML file holding the same
settings under their lower-case names without the ``TRELLIS_`` prefix, e.g.::

    server_name: example.org
    database_url: postgres://trellis@db/trellis

An environment variable always wins over the file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# setting name -> environment variable
ENV_NAMES = {
    "server_name": "TRELLIS_SERVER_NAME",
    "bind": "TRELLIS_BIND",
    "data_dir": "TRELLIS_DATA_DIR",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "public_baseurl": "TRELLIS_PUBLIC_BASEURL",
    "registration": "TRELLIS_REGISTRATION",
    "registration_shared_secret": "TRELLIS_REGISTRATION_SHARED_SECRET",
    "ratelimit": "TRELLIS_RATELIMIT",
    "presence": "TRELLIS_PRESENCE",
    "secret_key": "TRELLIS_SECRET_KEY",
    "access_token_lifetime_ms": "TRELLIS_ACCESS_TOKEN_LIFETIME_MS",
    "max_request_bytes": "TRELLIS_MAX_REQUEST_BYTES",
    "max_header_bytes": "TRELLIS_MAX_HEADER_BYTES",
    "http_header_timeout_s": "TRELLIS_HTTP_HEADER_TIMEOUT_S",
    "http_idle_timeout_s": "TRELLIS_HTTP_IDLE_TIMEOUT_S",
    "trusted_proxies": "TRELLIS_TRUSTED_PROXIES",
    "log_level": "TRELLIS_LOG_LEVEL",
    "db_pool_size": "TRELLIS_DB_POOL_SIZE",
    "web_threads": "TRELLIS_WEB_THREADS",
    "session_cache_s": "TRELLIS_SESSION_CACHE_S",
    "federation_server_name_for_well_known": "TRELLIS_WELL_KNOWN_SERVER",
    "max_upload_size": "TRELLIS_MAX_UPLOAD_SIZE",
    "media_user_quota": "TRELLIS_MEDIA_USER_QUOTA",
    "media_legacy_unauthenticated": "TRELLIS_MEDIA_LEGACY_UNAUTHENTICATED",
    "media_storage": "TRELLIS_MEDIA_STORAGE",
    "media_storage_options": "TRELLIS_MEDIA_STORAGE_OPTIONS",
    "url_previews": "TRELLIS_URL_PREVIEWS",
    "url_preview_ip_allowlist": "TRELLIS_URL_PREVIEW_IP_ALLOWLIST",
    "url_preview_ip_denylist": "TRELLIS_URL_PREVIEW_IP_DENYLIST",
    "federation_url_overrides": "TRELLIS_FEDERATION_URL_OVERRIDES",
    "federation_key_notaries": "TRELLIS_FEDERATION_KEY_NOTARIES",
    "federation_ip_allowlist": "TRELLIS_FEDERATION_IP_ALLOWLIST",
    "federation_bind": "TRELLIS_FEDERATION_BIND",
    "tls_cert": "TRELLIS_TLS_CERT",
    "tls_key": "TRELLIS_TLS_KEY",
    "federation_ca_file": "TRELLIS_FEDERATION_CA_FILE",
    "federation_verify_tls": "TRELLIS_FEDERATION_VERIFY_TLS",
    "push_ip_allowlist": "TRELLIS_PUSH_IP_ALLOWLIST",
    "turn_uris": "TRELLIS_TURN_URIS",
    "turn_shared_secret": "TRELLIS_TURN_SHARED_SECRET",
    "turn_ttl_s": "TRELLIS_TURN_TTL_S",
    "server_notices_localpart": "TRELLIS_SERVER_NOTICES_LOCALPART",
    "support_email": "TRELLIS_SUPPORT_EMAIL",
    "support_mxid": "TRELLIS_SUPPORT_MXID",
    "support_page": "TRELLIS_SUPPORT_PAGE",
    "smtp_host": "TRELLIS_SMTP_HOST",
    "smtp_port": "TRELLIS_SMTP_PORT",
    "smtp_user": "TRELLIS_SMTP_USER",
    "smtp_password": "TRELLIS_SMTP_PASSWORD",
    "smtp_security": "TRELLIS_SMTP_SECURITY",
    "email_from": "TRELLIS_EMAIL_FROM",
    "registration_requires_email": "TRELLIS_REGISTRATION_REQUIRES_EMAIL",
    "allow_guest_access": "TRELLIS_ALLOW_GUEST_ACCESS",
    "sms_webhook_url": "TRELLIS_SMS_WEBHOOK_URL",
    "identity_service": "TRELLIS_IDENTITY_SERVICE",
}

SMTP_SECURITY_MODES = ("none", "starttls", "tls")

REGISTRATION_MODES = ("open", "token", "closed")
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_BIND = "127.0.0.1:8008"


class ConfigError(Exception):
    pass


def _load_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"TRELLIS_CONFIG names {path!r}, which is not a file")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".toml":
        data: Any = tomllib.loads(text)
    else:
        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    unknown = set(data) - set(ENV_NAMES)
    if unknown:
        raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
    # Mappings and lists (e.g. federation_url_overrides) become the JSON their
    # environment variables hold.
    return {
        key: value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, (dict, list))
        else str(value)
        for key, value in data.items()
    }


def load(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return the settings that were given, from the file and then the environment."""
    env = dict(os.environ) if environ is None else environ
    values: dict[str, str] = {}
    if env.get("TRELLIS_CONFIG"):
        values.update(_load_file(env["TRELLIS_CONFIG"]))
    for name, var in ENV_NAMES.items():
        if env.get(var):
            values[name] = env[var]
    return values


def as_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off, not {value!r}")


def as_list(value: str) -> list[str]:
    """A comma-separated setting as a list of its non-empty items."""
    return [item.strip() for item in value.split(",") if item.strip()]


def as_json_object(value: str, name: str, *, default: dict[str, Any]) -> dict[str, Any]:
    """A setting holding a JSON object (empty: ``default``)."""
    if not value.strip():
        return default
    try:
        data = json.loads(value)
    except ValueError:
        raise ConfigError(f"{name} must be a JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return data


def as_networks(value: str, name: str) -> list[str]:
    """A comma-separated list of CIDRs (``10.0.0.0/8``, ``fd00::/8``, ``127.0.0.1``)."""
    items = as_list(value)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP network") from None
    return items


def as_url_overrides(value: str, name: str) -> dict[str, str]:
    """A JSON object of server name -> base URL (``http(s)://host[:port]``)."""
    overrides = as_json_object(value, name, default={})
    result = {}
    for server_name, url in overrides.items():
        parts = urlsplit(url) if isinstance(url, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ConfigError(
                f"{name}: {server_name!r} must map to a base URL like https://host:port"
            )
        result[server_name] = f"{parts.scheme}://{parts.netloc}"
    return result


# RFC 7065 section 3.1: turnURI = scheme ":" host [ ":" port ] [ "?transport=" transport ]
_TURN_URI = re.compile(
    r"^(?P<scheme>turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?$"
)


def as_turn_uris(value: str, name: str) -> list[str]:
    """A comma-separated list of TURN URIs (``turn:host[:port][?transport=udp|tcp]``, or
    ``turns:``), as clients are given them in GET /voip/turnServer. A config file may
    give them as a list, which reaches here as JSON."""
    uris: list[str] = []
    if value.lstrip().startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{name} must be a list of TURN URIs")
        uris = [item.strip() for item in items if item.strip()]
    else:
        uris = as_list(value)
    for uri in uris:
        match = _TURN_URI.match(uri)
        if match is None or not 0 < int(match["port"] or 3478) < 65536:
            raise ConfigError(
                f"{name}: {uri!r} is not a TURN URI like turn:turn.example.org:3478?transport=udp"
                " or turns:turn.example.org:5349?transport=tcp"
            )
    return uris


def as_positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, not {number}")
    return number


def data_dir(values: dict[str, str]) -> Path:
    """TRELLIS_DATA_DIR, by default ./data in the project."""
    return Path(values.get("data_dir", str(PROJECT_DIR / "data"))).resolve()


def signing_key_path(values: dict[str, str]) -> Path:
    return data_dir(values) / "signing.key"


def federation_ca_file(values: dict[str, str]) -> str:
    """TRELLIS_FEDERATION_CA_FILE: PEM certificates trusted for outbound federation as
    well as the system's authorities (empty: the system's only)."""
    path = values.get("federation_ca_file", "")
    if path and not Path(path).is_file():
        raise ConfigError(f"TRELLIS_FEDERATION_CA_FILE names {path!r}, which is not a file")
    return str(Path(path).resolve()) if path else ""
