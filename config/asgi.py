"""ASGI entry point: Django over HTTP; Channels routes further protocols as they come.

Two Django handlers share one URL configuration:
- Matrix requests (``/_matrix/``, ``/.well-known/matrix/``, ``/_synapse/``) go through
  ``MATRIX_MIDDLEWARE`` only: the CORS middleware, which is async like the event loop.
  Django's other middleware is synchronous; under ASGI each of its hooks is a hop to a
  thread and back, a dozen per request, which cost more than a simple endpoint itself.
  Those requests carry bearer tokens, never cookies, so sessions, CSRF, the admin's
  authentication and messages have nothing to do for them.
- Everything else (the admin portal, its static files) gets ``MIDDLEWARE``, the full list.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from config.middleware import MATRIX_PREFIXES  # noqa: E402


class MatrixASGIHandler(ASGIHandler):
    """Django's ASGI handler with ``settings.MATRIX_MIDDLEWARE`` instead of ``MIDDLEWARE``."""

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.MATRIX_MIDDLEWARE
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = full


matrix_asgi_app = MatrixASGIHandler()
portal_asgi_app = ASGIStaticFilesHandler(django_asgi_app)


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"].startswith(MATRIX_PREFIXES):
        await matrix_asgi_app(scope, receive, send)
    else:
        await portal_asgi_app(scope, receive, send)


application = ProtocolTypeRouter({"http": http_app})
