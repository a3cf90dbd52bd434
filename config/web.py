"""One homeserver process: Daphne, and a Celery worker in a thread beside it.

``python -m config.launcher`` (``make run``) prepares the signing key and then becomes
this process. The worker shares the web process's interpreter, modules and memory
instead of loading a second copy of the application; it consumes the same broker as any
separate worker would (filesystem by default, Redis with REDIS_URL), with late
acknowledgement, so a task whose process dies is delivered again. In this embedded mode
it also sends the periodic tasks (TRELLIS_EMBEDDED_SCHEDULER, config/celery.py).

Ctrl-C or SIGTERM stops Daphne (Twisted handles the signals), then the worker, which
finishes the tasks it is running first. If the worker stops by itself, the server
stops too, with a non-zero status. Production deployments may run more workers as
separate ``celery worker`` processes and web processes with ``--no-worker`` (README).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.http_server import EdgeSettings, TlsListener

logger = logging.getLogger(__name__)

WORKER_CONCURRENCY = 4
WORKER_STOP_TIMEOUT_S = 15


class _Worker:
    """A Celery WorkController running in a daemon thread."""

    def __init__(self) -> None:
        from celery import signals
        from celery.worker import WorkController

        from config.celery import app

        class EmbeddedWorkController(WorkController):  # type: ignore[misc]
            def on_consumer_ready(self, consumer: Any) -> None:
                # What ``celery worker`` does: starts the embedded scheduler.
                signals.worker_ready.send(sender=consumer)
                print(f"Celery worker {self.hostname} ready.", flush=True)

        self.controller = EmbeddedWorkController(
            app=app,
            hostname=f"embedded-{os.getpid()}@{socket.gethostname()}",
            pool_cls="threads",
            concurrency=WORKER_CONCURRENCY,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.stopping = False
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="celery-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.controller.start()
        except BaseException:
            logger.exception("The Celery worker failed")
            self.failed = True
        if not self.stopping:
            self.failed = True
            print("The Celery worker stopped; stopping the server", file=sys.stderr, flush=True)
            from twisted.internet import reactor

            reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        self.controller.stop(in_sighandler=False, exitcode=0)
        self.thread.join(WORKER_STOP_TIMEOUT_S)


def _load_and_freeze() -> None:
    """Load the application, then exempt everything loaded so far from garbage collection.

    Django, the apps and their libraries are some hundred thousand objects that live as
    long as the process; left to the collector, every full collection walks them all,
    which cost a /messages page of 100 events 2 of its 8 ms on PostgreSQL. As Synapse
    does at start-up: collect once, then freeze what is left.
    """
    import gc

    from django.urls import get_resolver

    import config.asgi  # noqa: F401  (the application, as Daphne will load it)

    get_resolver().url_patterns  # noqa: B018  (imports every app's views)
    gc.collect()
    gc.freeze()


def _edge_settings() -> EdgeSettings:
    from django.conf import settings

    from config.http_server import EdgeSettings

    return EdgeSettings(
        max_header_bytes=settings.HTTP_MAX_HEADER_BYTES,
        header_timeout_s=settings.HTTP_HEADER_TIMEOUT_S,
        idle_timeout_s=settings.HTTP_IDLE_TIMEOUT_S,
        trusted_proxies=settings.TRUSTED_PROXIES,
    )


def run(
    host: str,
    port: int,
    *,
    worker: bool = True,
    federation_tls: TlsListener | None = None,
) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from config.http_server import serve

    _load_and_freeze()
    from config.asgi import application

    embedded: _Worker | None = None
    if worker:
        os.environ["TRELLIS_EMBEDDED_SCHEDULER"] = "1"
        embedded = _Worker()
        embedded.start()
    # Twisted handles SIGINT only where Python's own handler is in place; a shell that
    # started the server in the background set it to "ignore". Ctrl-C must stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exit_code = 0
    try:
        exit_code = serve(
            application,
            host,
            port,
            _edge_settings(),
            [federation_tls] if federation_tls else [],
        )
    except SystemExit as stop:
        exit_code = stop.code if isinstance(stop.code, int) else 1
    finally:
        if embedded is not None:
            embedded.stop()
            if embedded.failed:
                exit_code = exit_code or 1
    print("Trellis stopped", flush=True)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One Trellis process: web server and worker.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-worker", action="store_true", help="the web server only")
    federation = parser.add_argument_group(
        "federation listener", "listen over TLS too (all four, or none)"
    )
    federation.add_argument("--federation-host")
    federation.add_argument("--federation-port", type=int)
    federation.add_argument("--tls-cert", help="PEM certificate chain")
    federation.add_argument("--tls-key", help="PEM private key")
    args = parser.parse_args(argv)
    tls_args = (args.federation_host, args.federation_port, args.tls_cert, args.tls_key)
    federation_tls = None
    if any(value is not None for value in tls_args):
        if any(value is None for value in tls_args):
            parser.error("--federation-host, --federation-port, --tls-cert, --tls-key go together")
        from config.http_server import TlsListener

        federation_tls = TlsListener(
            args.federation_host, args.federation_port, Path(args.tls_cert), Path(args.tls_key)
        )
    return run(args.host, args.port, worker=not args.no_worker, federation_tls=federation_tls)


if __name__ == "__main__":
    raise SystemExit(main())
