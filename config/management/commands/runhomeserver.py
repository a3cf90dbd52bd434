"""Start the homeserver: the web server and a Celery worker, supervised together.

``make run`` calls this after migrating. It prepares the signing key, starts Daphne
on TRELLIS_BIND and a Celery worker (with the periodic-task scheduler) as child
processes, and stops both cleanly on Ctrl-C or SIGTERM. If either child dies, the
other is stopped and the command exits non-zero.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from federation.keys import ensure_signing_key
from protocol.identifiers import split_port

STOP_TIMEOUT_S = 20


class Command(BaseCommand):
    help = "Run the homeserver (web server and Celery worker) until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=None, help="host:port (default TRELLIS_BIND)")
        parser.add_argument("--no-worker", action="store_true", help="start the web server only")

    def handle(self, *args: Any, **options: Any) -> None:
        bind = options["bind"] or settings.BIND
        host, port = split_port(bind)
        if port is None:
            raise CommandError(f"TRELLIS_BIND must be host:port, not {bind!r}")
        key, created = ensure_signing_key()
        self.stdout.write(
            f"{'Created' if created else 'Using'} signing key ed25519:{key.version}; "
            f"server name {settings.SERVER_NAME}; data in {settings.DATA_DIR}"
        )
        python = sys.executable
        children: dict[str, subprocess.Popen[bytes]] = {}
        children["web"] = subprocess.Popen(
            [
                python,
                "-m",
                "daphne",
                "-b",
                host.strip("[]"),
                "-p",
                str(port),
                "--proxy-headers",
                "config.asgi:application",
            ],
        )
        if not options["no_worker"]:
            children["worker"] = subprocess.Popen(
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--beat",
                    "--pool",
                    "threads",
                    "--concurrency",
                    "4",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
                ],
            )
        self.stdout.write(f"Trellis is listening on http://{bind} (Ctrl-C stops it)")

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
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.2)
        self._stop(children)
        if exit_code:
            raise SystemExit(exit_code)

    def _stop(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
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
        self.stdout.write("Trellis stopped")
        sys.stdout.flush()
