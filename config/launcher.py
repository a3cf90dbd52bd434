"""Start the homeserver: ``make run`` runs ``python -m config.launcher`` after migrating.

It prepares the signing key and, when TRELLIS_FEDERATION_BIND is set, the federation
listener's TLS certificate (config/tls.py), says where the server listens, and then
becomes (exec) ``python -m config.web``: one process holding Daphne and a Celery worker
thread (config/web.py). It imports neither Django nor Celery before that, so a bad
setting or a missing key is reported at once, without loading the application.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys

from config import options, tls
from federation.keyfile import ensure_signing_key
from protocol.identifiers import split_port

STOP_TIMEOUT_S = 20
DEFAULT_SERVER_NAME = "localhost:8008"


def run(bind: str | None = None, *, worker: bool = True) -> int:
    values = options.load()
    bind = bind or values.get("bind", options.DEFAULT_BIND)
    try:
        host, port = split_port(bind)
    except ValueError:
        port = None
    if port is None:
        print(f"TRELLIS_BIND must be host:port, not {bind!r}", file=sys.stderr)
        return 2
    if not _can_listen(host, port, "TRELLIS_BIND"):
        return 2
    server_name = values.get("server_name", DEFAULT_SERVER_NAME)
    key, created = ensure_signing_key(options.signing_key_path(values))
    print(
        f"{'Created' if created else 'Using'} signing key ed25519:{key.version}; "
        f"server name {server_name}; data in {options.data_dir(values)}",
        flush=True,
    )
    command = [sys.executable, "-m", "config.web", "--host", host.strip("[]"), "--port", str(port)]
    if not worker:
        command.append("--no-worker")
    federation_bind = values.get("federation_bind")
    if federation_bind:
        federation_args = _federation_listener(values, federation_bind, server_name)
        if federation_args is None:
            return 2
        command += federation_args
    try:
        verify = options.as_bool(values.get("federation_verify_tls", "on"), "")
    except options.ConfigError:
        verify = True  # the settings report the bad value, with its name
    if not verify:
        print(
            "WARNING: TRELLIS_FEDERATION_VERIFY_TLS is off: other servers' certificates "
            "are not verified. For test set-ups only.",
            file=sys.stderr,
            flush=True,
        )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    print(f"Starting Trellis on http://{bind} (Ctrl-C stops it)", flush=True)
    os.execve(sys.executable, command, env)


def _federation_listener(
    values: dict[str, str], federation_bind: str, server_name: str
) -> list[str] | None:
    """Prepare the TLS listener for other servers: its certificate, generated once if
    none is given; the arguments that tell config.web about it (None: cannot)."""
    try:
        host, port = split_port(federation_bind)
    except ValueError:
        port = None
    if port is None:
        print(
            f"TRELLIS_FEDERATION_BIND must be host:port, not {federation_bind!r}",
            file=sys.stderr,
        )
        return None
    if not _can_listen(host, port, "TRELLIS_FEDERATION_BIND"):
        return None
    try:
        files, created = tls.ensure_tls_files(
            values.get("tls_cert"),
            values.get("tls_key"),
            options.data_dir(values),
            tls.certificate_names(server_name, host),
        )
        # Read them now, as the listener will: a wrong or mismatched file is said here.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(files.cert, files.key)
    except (ValueError, OSError, ssl.SSLError) as exc:
        print(f"Cannot use the federation TLS certificate: {exc}", file=sys.stderr)
        return None
    origin = (
        ("Created" if created else "Using") + " a self-signed certificate"
        if files.self_signed
        else "Using the certificate"
    )
    print(f"{origin} {files.cert} for federation over TLS", flush=True)
    print(f"Federation listener: https://{federation_bind}", flush=True)
    return [
        "--federation-host",
        host.strip("[]"),
        "--federation-port",
        str(port),
        "--tls-cert",
        str(files.cert),
        "--tls-key",
        str(files.key),
    ]


def _can_listen(host: str, port: int, setting: str) -> bool:
    """Whether host:port can be listened on, as Twisted will (SO_REUSEADDR); if not,
    say so in one line, before a worker or anything else has started."""
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"Cannot listen on {host}:{port} ({setting}): {reason}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Trellis homeserver.")
    parser.add_argument("--bind", default=None, help="host:port (default TRELLIS_BIND)")
    parser.add_argument(
        "--no-worker", action="store_true", help="the web server only, no worker thread"
    )
    args = parser.parse_args(argv)
    return run(args.bind, worker=not args.no_worker)


if __name__ == "__main__":
    raise SystemExit(main())
