"""Synapse, the reference homeserver, as a real peer for interop tests.

Installed from the package index into a virtualenv of its own the first time a test needs
it (``TRELLIS_SYNAPSE_VENV``, default ``~/.cache/trellis-tests/synapse-venv``), then reused:
a fresh machine pays a few minutes once, never a skip. Each peer runs on 127.0.0.1 with
fresh data in a directory of the test's, on SQLite, with open registration
(``m.login.dummy``), rate limits out of reach, no trusted key servers (nothing leaves the
machine) and leave to reach other servers on loopback with self-signed certificates.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The range the interop tests were written against; pip takes the newest in it.
SYNAPSE_REQUIREMENT = "matrix-synapse>=1.120,<2"
INSTALL_TIMEOUT_S = 1200
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30

_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_joins_per_room",
    "rc_third_party_invite",
    "rc_3pid_validation",
    "rc_admin_redaction",
    "rc_room_creation",
    "rc_media_create",
    "rc_key_requests",
    "rc_delayed_event_mgmt",
    "rc_reports",
    "rc_user_directory",
    "rc_profile",
)


def venv_dir() -> Path:
    configured = os.environ.get("TRELLIS_SYNAPSE_VENV")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trellis-tests" / "synapse-venv"


def _installed(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import synapse.app.homeserver"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return probe.returncode == 0


def synapse_python() -> Path:
    """The Python of a virtualenv with Synapse in it, installing it when missing (under a
    file lock, so parallel test workers install it once)."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if _installed(python):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(python):
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", SYNAPSE_REQUIREMENT],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    return python


@dataclass
class SynapsePeer:
    url: str
    server_name: str
    data: Path
    process: subprocess.Popen[bytes] | None = None
    # The certificate of its TLS federation listener, if it has one.
    federation_cert: Path | None = None

    def log(self) -> str:
        path = self.data / "homeserver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load((self.data / "homeserver.yaml").read_text())
        return loaded


@dataclass(frozen=True)
class FederationTls:
    """A TLS listener for federation: its port (the server is named ``localhost:<port>``)
    and the PEM certificate and key it presents."""

    port: int
    cert: Path
    key: Path


def _configure(
    peer: SynapsePeer, port: int, extra: dict[str, Any], tls: FederationTls | None
) -> None:
    config = peer.config()
    config["listeners"] = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client", "federation"], "compress": False}],
        }
    ]
    if tls is not None:
        config["listeners"].append(
            {
                "port": tls.port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": True,
                "x_forwarded": False,
                "resources": [{"names": ["federation"], "compress": False}],
            }
        )
        config["tls_certificate_path"] = str(tls.cert)
        config["tls_private_key_path"] = str(tls.key)
        config.update(
            {
                # No backoff from a peer that failed once: a test that stops a server
                # expects its backlog as soon as it is back.
                "federation": {
                    "destination_min_retry_interval": 0,
                    "destination_retry_multiplier": 2,
                    "destination_max_retry_interval": 0,
                },
                "allow_public_rooms_over_federation": True,
                "room_list_publication_rules": [{"action": "allow"}],
            }
        )
    config["database"] = {
        "name": "sqlite3",
        "args": {"database": str(peer.data / "homeserver.db")},
    }
    config.update(
        {
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "report_stats": False,
            "suppress_key_server_warning": True,
            "trusted_key_servers": [],
            # Other servers in these tests are on loopback with self-signed certificates.
            "federation_verify_certificates": False,
            "ip_range_whitelist": ["127.0.0.1/32", "::1/128"],
        }
    )
    big = {"per_second": 100000, "burst_count": 1000000}
    for key in _RATE_LIMITS:
        config[key] = dict(big)
    config["rc_login"] = {"address": big, "account": big, "failed_attempts": big}
    config["rc_joins"] = {"local": big, "remote": big}
    config["rc_invites"] = {"per_room": big, "per_user": big, "per_issuer": big}
    config["rc_presence"] = {"per_user": big}
    config["rc_federation"] = {
        "window_size": 1000,
        "sleep_limit": 100000,
        "sleep_delay": 1,
        "reject_limit": 100000,
        "concurrent": 1000,
    }
    config.update(extra)
    (peer.data / "homeserver.yaml").write_text(yaml.safe_dump(config, sort_keys=True))


def start_synapse(
    data: Path,
    port: int,
    extra_config: dict[str, Any] | None = None,
    *,
    federation_tls: FederationTls | None = None,
) -> SynapsePeer:
    """A Synapse on http://127.0.0.1:``port`` named ``localhost:<port>``, from fresh data in
    ``data``, answering /versions. With ``federation_tls`` it also listens for other
    servers over TLS on that port and is named ``localhost:<that port>``, so other servers
    find it by the spec's discovery."""
    python = synapse_python()
    server_name = f"localhost:{federation_tls.port if federation_tls else port}"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "synapse.app.homeserver",
            "--generate-config",
            "--server-name",
            server_name,
            "--config-path",
            str(data / "homeserver.yaml"),
            "--data-directory",
            str(data),
            "--report-stats=no",
        ],
        cwd=data,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log_config = data / f"{server_name}.log.config"
    log_config.write_text(
        log_config.read_text().replace(
            "filename: homeserver.log", f"filename: {data / 'homeserver.log'}"
        )
    )
    peer = SynapsePeer(
        url=f"http://127.0.0.1:{port}",
        server_name=server_name,
        data=data,
        federation_cert=federation_tls.cert if federation_tls else None,
    )
    _configure(peer, port, extra_config or {}, federation_tls)
    with open(data / "stdout.log", "wb") as stdout:
        peer.process = subprocess.Popen(
            [str(python), "-m", "synapse.app.homeserver", "--config-path", "homeserver.yaml"],
            cwd=data,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            output = (data / "stdout.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Synapse exited during start-up:\n{output}")
        with suppress(OSError):
            urllib.request.urlopen(f"{peer.url}/_matrix/client/versions", timeout=2).read()
            return peer
        time.sleep(0.3)
    stop_synapse(peer)
    raise RuntimeError(f"Synapse did not answer within {START_TIMEOUT_S} s")


def stop_synapse(peer: SynapsePeer) -> None:
    process = peer.process
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
