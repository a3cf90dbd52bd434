"""The federation listener of a real server: ``runhomeserver`` with
TRELLIS_FEDERATION_BIND listens over TLS beside its plain listener, with the self-signed
certificate it generated into its data directory, and other servers (here, a client
trusting that certificate as its authority) fetch its keys there."""

from __future__ import annotations

import json
import ssl
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.tls import SELF_SIGNED_CERT_NAME, SELF_SIGNED_KEY_NAME
from protocol.signing import decode_verify_key_bytes, verify_signed_json
from tests.live.conftest import (
    LiveServer,
    backend_environ,
    free_port,
    start_homeserver,
    stop_homeserver,
)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def federating_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, int, Path]]:
    data_dir: Path = tmp_path_factory.mktemp("federation-listener")
    tls_port = free_port()
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(
            data_dir,
            backend,
            server_name=f"localhost:{tls_port}",
            environ={"TRELLIS_FEDERATION_BIND": f"127.0.0.1:{tls_port}"},
        )
        try:
            yield server, tls_port, data_dir
        finally:
            stop_homeserver(server)


def test_other_servers_fetch_the_signing_key_over_tls(
    federating_server: tuple[LiveServer, int, Path],
) -> None:
    server, tls_port, data_dir = federating_server
    cert = data_dir / SELF_SIGNED_CERT_NAME
    # Verified as another server would verify it, for the server name's host.
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://localhost:{tls_port}/_matrix/key/v2/server"
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        assert response.status == 200
        keys = json.loads(response.read())

    assert keys["server_name"] == server.server_name
    ((key_id, key),) = keys["verify_keys"].items()
    verify_signed_json(keys, server.server_name, decode_verify_key_bytes(key_id, key["key"]))


def test_the_generated_pair_is_private_to_the_server(
    federating_server: tuple[LiveServer, int, Path],
) -> None:
    _server, _tls_port, data_dir = federating_server
    for name in (SELF_SIGNED_CERT_NAME, SELF_SIGNED_KEY_NAME):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600


def test_a_client_without_the_certificate_refuses_it(
    federating_server: tuple[LiveServer, int, Path],
) -> None:
    _server, tls_port, _data_dir = federating_server
    url = f"https://localhost:{tls_port}/_matrix/key/v2/server"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url, timeout=30, context=ssl.create_default_context())


def test_the_plain_listener_still_answers(
    federating_server: tuple[LiveServer, int, Path],
) -> None:
    server, _tls_port, _data_dir = federating_server
    with urllib.request.urlopen(f"{server.url}/_matrix/key/v2/server", timeout=30) as response:
        assert json.loads(response.read())["server_name"] == server.server_name
