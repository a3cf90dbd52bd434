"""Start the homeserver: the web server and a Celery worker, supervised together.

``make run`` runs ``python -m config.launcher`` after migrating. It prepares the
signing key, starts Daphne on TRELLIS_BIND and a Celery worker as child processes, and
stops both cleanly on Ctrl-C or SIGTERM; if either child dies, the other is stopped and
the launcher exits non-zero. It imports neither Django nor Celery, so the supervisor
costs a few megabytes, not a third copy of the application.

In this embedded mode the worker also runs the periodic tasks itself
(TRELLIS_EMBEDDED_SCHEDULER, see config/celery.py) instead of a separate beat process;
production runs ``celery beat`` once (README).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

from config import options
from federation.keyfile import ensure_signing_key
from protocol.identifiers import split_port

STOP_TIMEOUT_S = 20


def _web_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        host.strip("[]"),
        "-p",
        str(port),
        "--proxy-headers",
        "config.asgi:application",
    ]


def _worker_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config.celery",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        "4",
        "--loglevel",
        "INFO",
    ]


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
    children: dict[str, subprocess.Popen[bytes]] = {
        "web": subprocess.Popen(_web_command(host, port), env=env)
    }
    if worker:
        children["worker"] = subprocess.Popen(
            _worker_command(), env=dict(env, TRELLIS_EMBEDDED_SCHEDULER="1")
        )
    print(f"Trellis is listening on http://{bind} (Ctrl-C stops it)", flush=True)

    stopping = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with status {child.returncode}; stopping", file=sys.stderr)
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.2)
    _stop(children)
    return exit_code


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    print("Trellis stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Trellis homeserver.")
    parser.add_argument("--bind", default=None, help="host:port (default TRELLIS_BIND)")
    parser.add_argument("--no-worker", action="store_true", help="start the web server only")
    args = parser.parse_args(argv)
    return run(args.bind, worker=not args.no_worker)


if __name__ == "__main__":
    raise SystemExit(main())
