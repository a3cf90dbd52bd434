"""ASGI entry point: Django over HTTP; Channels routes further protocols as they come.

Static files (the admin portal's CSS and JavaScript) are served by Django's ASGI
static-files handler in front of the app, so every middleware stays async-capable and
long-polling /sync requests wait on the event loop, not in a thread.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

application = ProtocolTypeRouter({"http": ASGIStaticFilesHandler(django_asgi_app)})
