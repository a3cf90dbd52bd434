"""``manage.py runhomeserver``: the same as ``python -m config.launcher``."""

from typing import Any

from django.core.management.base import BaseCommand

from config import launcher


class Command(BaseCommand):
    help = "Run the homeserver (web server and Celery worker) until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default=None, help="host:port (default TRELLIS_BIND)")
        parser.add_argument("--no-worker", action="store_true", help="start the web server only")

    def handle(self, *args: Any, **options: Any) -> None:
        code = launcher.run(options["bind"], worker=not options["no_worker"])
        if code:
            raise SystemExit(code)
