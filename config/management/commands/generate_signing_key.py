from typing import Any

from django.core.management.base import BaseCommand

from federation.keys import ensure_signing_key


class Command(BaseCommand):
    help = "Create the server's ed25519 signing key in TRELLIS_DATA_DIR if it has none."

    def handle(self, *args: Any, **options: Any) -> None:
        key, created = ensure_signing_key()
        verb = "Created" if created else "Using"
        self.stdout.write(f"{verb} signing key ed25519:{key.version}")
