"""Start the homeserver: ``make run`` runs ``python -m config.launcher`` after migrating.

It prepares the signing key, says where the server listens, and then becomes (exec)
``python -m config.web``: one process holding Daphne and a Celery worker thread
(config/web.py). It imports neither Django nor Celery before that, so a bad setting or
a missing key is reported at once, without loading the application.
"""

from __future__ import annotations

import argparse
import os
import sys

from config import options
from federation.keyfile import ensure_signing_key
from protocol.identifiers import split_port

STOP_TIMEOUT_S = 20


def run(bind: str | None = None, *, worker: bool = True) -> int:
    values = options.load()
    bind = bind or values.get("bind", options.DEFAULT_BIND)
    host, port = split_port(bind)
    if port is None:
        print(f"TRELLIS_BIND must be host:port, not {bind!r}", file=sys.stderr)
        return 2
    key, created = ensure_signing_key(options.signing_key_path(values))
    print(
        f"{'Created' if created else 'Using'} signing key ed25519:{key.version}; "
        f"server name {values.get('server_name', 'localhost:8008')}; "
        f"data in {options.data_dir(values)}",
        flush=True,
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    print(f"Trellis is listening on http://{bind} (Ctrl-C stops it)", flush=True)
    command = [sys.executable, "-m", "config.web", "--host", host.strip("[]"), "--port", str(port)]
    if not worker:
        command.append("--no-worker")
    os.execve(sys.executable, command, env)


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
