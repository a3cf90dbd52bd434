"""Interop with Synapse: a Synapse user downloads media uploaded to Trellis.

Synapse fetches the media from Trellis's federation endpoint
(``/_matrix/federation/v1/media/download/{mediaId}``) with a request it signs (X-Matrix);
Trellis fetches Synapse's keys from Synapse's ``/_matrix/key/v2/server`` to check it.

The setup, all on 127.0.0.1:
- Synapse from tests/live/synapse.py (installed into its own virtualenv on first use;
  plain HTTP on $SYNAPSE_PEER_PORT, default 18228, server name ``localhost:<port>``),
  told to accept self-signed certificates and to connect to 127.0.0.1 (it refuses
  private addresses by default);
- Trellis with server name ``localhost:<tls port>``, behind a small TLS-terminating
  proxy in this test (federation is HTTPS only), and a URL override telling it Synapse's
  server name is at ``http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from tests.federation.helpers import self_signed_certificate
from tests.live.conftest import (
    LiveServer,
    backend_environ,
    free_port,
    start_homeserver,
    stop_homeserver,
)
from tests.live.synapse import SynapsePeer, start_synapse, stop_synapse

pytestmark = pytest.mark.live

SYNAPSE_PORT = int(os.environ.get("SYNAPSE_PEER_PORT", "18228"))


def _http(
    method: str, url: str, body: Any = None, token: str | None = None, raw: bytes | None = None
) -> tuple[int, bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json" if raw is None else "text/plain")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _register(base_url: str, localpart: str) -> str:
    status, body = _http(
        "POST",
        f"{base_url}/_matrix/client/v3/register",
        {"username": localpart, "password": "interop pw", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    token: str = json.loads(body)["access_token"]
    return token


class TlsProxy:
    """Accepts TLS on 127.0.0.1:<port> and relays the plain bytes to a local port."""

    def __init__(self, port: int, upstream_port: int, cert: Path, key: Path) -> None:
        self.upstream_port = upstream_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.5)
        self.stopping = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join(timeout=60)
        client.close()
        upstream.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            raw.settimeout(None)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=5)


_PEERS: dict[str, SynapsePeer] = {}


def synapse_log(url: str) -> str:
    return _PEERS[url].log()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Synapse on http://127.0.0.1:SYNAPSE_PORT, allowed to reach Trellis on 127.0.0.1."""
    peer = start_synapse(tmp_path_factory.mktemp("synapse"), SYNAPSE_PORT)
    _PEERS[peer.url] = peer
    try:
        yield peer.url
    finally:
        stop_synapse(peer)


@pytest.fixture(scope="module")
def trellis_behind_tls(
    tmp_path_factory: pytest.TempPathFactory, synapse: str
) -> Iterator[tuple[LiveServer, TlsProxy]]:
    data_dir = tmp_path_factory.mktemp("trellis-tls")
    cert, key = self_signed_certificate(data_dir)
    tls_port = free_port()
    overrides = {f"localhost:{SYNAPSE_PORT}": synapse}
    with backend_environ(data_dir, slot=1) as backend:
        server = start_homeserver(
            data_dir,
            backend,
            server_name=f"localhost:{tls_port}",
            environ={"TRELLIS_FEDERATION_URL_OVERRIDES": json.dumps(overrides)},
        )
        proxy = TlsProxy(tls_port, int(server.url.rsplit(":", 1)[1]), cert, key)
        try:
            yield server, proxy
        finally:
            proxy.close()
            stop_homeserver(server)


def test_a_synapse_user_downloads_media_uploaded_to_trellis(
    synapse: str, trellis_behind_tls: tuple[LiveServer, TlsProxy]
) -> None:
    trellis, proxy = trellis_behind_tls
    alice = _register(trellis.url, "alice")
    content = b"hello from Trellis, " + os.urandom(16).hex().encode()
    status, body = _http(
        "POST",
        f"{trellis.url}/_matrix/media/v3/upload?filename=hello.txt",
        token=alice,
        raw=content,
    )
    assert status == 200, body
    mxc = json.loads(body)["content_uri"]
    assert mxc.startswith(f"mxc://{trellis.server_name}/")
    media_id = mxc.rsplit("/", 1)[1]
    bob = _register(synapse, "bob")

    status, body = _http(
        "GET",
        f"{synapse}/_matrix/client/v1/media/download/{trellis.server_name}/{media_id}",
        token=bob,
    )

    assert status == 200, (body, trellis.log()[-3000:])
    assert body == content
    assert proxy.connections >= 1
    # Synapse asked over federation, signed, and Trellis checked it with Synapse's key,
    # fetched from Synapse itself.
    assert f"fetched the keys of localhost:{SYNAPSE_PORT}: ed25519:" in trellis.log()
    assert "refused a request" not in trellis.log()
    # Synapse logs the outbound request just after answering its client.
    wanted = f"/_matrix/federation/v1/media/download/{media_id}"
    deadline = time.monotonic() + 10
    while wanted not in synapse_log(synapse) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert wanted in synapse_log(synapse)


def test_a_synapse_user_gets_a_thumbnail_of_trellis_media(
    synapse: str, trellis_behind_tls: tuple[LiveServer, TlsProxy]
) -> None:
    from tests.media.conftest import image_bytes

    trellis, _ = trellis_behind_tls
    alice = _register(trellis.url, "alice2")
    request = urllib.request.Request(
        f"{trellis.url}/_matrix/media/v3/upload?filename=p.png",
        data=image_bytes(400, 300),
        method="POST",
        headers={"Authorization": f"Bearer {alice}", "Content-Type": "image/png"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        media_id = json.loads(response.read())["content_uri"].rsplit("/", 1)[1]
    bob = _register(synapse, "bob2")

    status, body = _http(
        "GET",
        f"{synapse}/_matrix/client/v1/media/thumbnail/{trellis.server_name}/{media_id}"
        "?width=96&height=96&method=crop",
        token=bob,
    )

    assert status == 200, (body[:500], trellis.log()[-3000:])
    assert body[:2] == b"\xff\xd8" or body[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_request_in_synapses_name_it_did_not_sign_is_refused(
    synapse: str, trellis_behind_tls: tuple[LiveServer, TlsProxy]
) -> None:
    """Synapse's real key ID, a signature Synapse's key did not make: 401."""
    trellis, _ = trellis_behind_tls
    origin = f"localhost:{SYNAPSE_PORT}"
    status, keys = _http("GET", f"{synapse}/_matrix/key/v2/server")
    assert status == 200
    key_id = next(iter(json.loads(keys)["verify_keys"]))
    header = (
        f'X-Matrix origin="{origin}",destination="{trellis.server_name}",'
        f'key="{key_id}",sig="{"A" * 86}"'
    )
    request = urllib.request.Request(
        f"{trellis.url}/_matrix/federation/v1/media/download/x", headers={"Authorization": header}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["errcode"] == "M_UNAUTHORIZED"
