"""ASGI entry point: Django over HTTP; Channels routes further protocols as they come.

Two Django handlers share one URL configuration:
- Matrix requests (``/_matrix/``, ``/.well-known/matrix/``, ``/_synapse/``) go through
  ``MATRIX_MIDDLEWARE`` only: the CORS middleware, which is async like the event loop.
  Django's other middleware is synchronous; under ASGI each of its hooks is a hop to a
  thread and back, a dozen per request, which cost more than a simple endpoint itself.
  Those requests carry bearer tokens, never cookies, so sessions, CSRF, the admin's
  authentication and messages have nothing to do for them.
- Everything else (the admin portal, its static files) gets ``MIDDLEWARE``, the full list.

A Matrix request to a synchronous view (all but /sync) is answered in one hop to a
request thread (config/request_threads.py): signals, middleware, the view and rendering
all run there, as under WSGI, and ``request_finished`` closes (on PostgreSQL, returns to
psycopg's pool) the connections the request opened. Django's own ASGI path starts a new
thread for every request (its per-request ``ThreadSensitiveContext``) and hops to it
and back several times, which cost more than a simple endpoint's work. The async /sync
view runs on the event loop and does its database work in request threads.
"""

import asyncio
import functools
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from asgiref.sync import iscoroutinefunction  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.core.handlers.base import BaseHandler  # noqa: E402
from django.http import FileResponse, HttpResponseBase  # noqa: E402
from django.urls import Resolver404, ResolverMatch, get_resolver, set_script_prefix  # noqa: E402

from config import hangup  # noqa: E402
from config.lru import LRU  # noqa: E402
from config.middleware import MATRIX_PREFIXES  # noqa: E402
from config.paths import (  # noqa: E402
    request_routing_path,
    scope_routing_path,
    unescape_parameter,
)
from config.request_threads import in_request_thread  # noqa: E402

# Path -> its resolution, for paths without variable parts (/sync, /versions,
# /keys/upload...): Django tries the URL patterns one by one for every request, which
# cost more than an empty /sync's own work. A path with an ID in it is seldom asked for
# twice, so remembering those would only hold memory (a ResolverMatch keeps the list of
# patterns it tried).
_resolved: LRU[str, ResolverMatch] = LRU(1024)


def _resolve(path: str) -> ResolverMatch:
    """``get_resolver().resolve(path)``, remembered for fixed paths. A ResolverMatch
    depends only on the path and the URL configuration, which does not change while the
    process runs."""
    match = _resolved.get(path)
    if match is None:
        match = get_resolver().resolve(path)
        if not match.args and not match.kwargs:
            _resolved.put(path, match)
    return match


class MatrixResolution(BaseHandler):
    """URL resolution for Matrix requests: remembered for fixed paths, and on the raw
    path where a parameter holds an encoded ``/`` (config/paths.py)."""

    def resolve_request(self, request: Any) -> ResolverMatch:
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        routed = request_routing_path(request)
        if routed is None:
            match = _resolve(request.path_info)
        else:
            match = get_resolver().resolve(routed)
            match.args = tuple(unescape_parameter(arg) for arg in match.args)
            match.kwargs = {
                key: unescape_parameter(value) if isinstance(value, str) else value
                for key, value in match.kwargs.items()
            }
        request.resolver_match = match
        return match


def _load_matrix_middleware(handler: BaseHandler, is_async: bool) -> None:
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = settings.MATRIX_MIDDLEWARE
    try:
        BaseHandler.load_middleware(handler, is_async=is_async)
    finally:
        settings.MIDDLEWARE = full


class _SyncMatrixHandler(MatrixResolution):
    def __init__(self) -> None:
        super().__init__()
        _load_matrix_middleware(self, is_async=False)


class MatrixASGIHandler(MatrixResolution, ASGIHandler):
    """Django's ASGI handler with ``settings.MATRIX_MIDDLEWARE`` instead of ``MIDDLEWARE``,
    synchronous views answered in one hop to the request threads, async views on the
    event loop without Django's per-request thread."""

    def __init__(self) -> None:
        super().__init__()
        self._sync_handler = _SyncMatrixHandler()
        self._respond_in_thread = in_request_thread(self._respond)
        self._close_in_thread = in_request_thread(HttpResponseBase.close)

    def load_middleware(self, is_async: bool = False) -> None:
        _load_matrix_middleware(self, is_async=is_async)

    def _is_async_view(self, path: str) -> bool:
        try:
            return iscoroutinefunction(_resolve(path).func)
        except Resolver404:
            return False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            if self._is_async_view(scope_routing_path(scope)):
                await self._answer_async(scope, body_file, receive, send)
                return
            response = await self._respond_in_thread(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await self._close_in_thread(response)
        finally:
            body_file.close()

    def _respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The whole synchronous part of a request, in a request thread (as under WSGI)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self._sync_handler.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            # Sends request_finished in this thread, which closes its connections.
            response.close()
        return response

    async def _answer_async(
        self, scope: dict[str, Any], body_file: Any, receive: Any, send: Any
    ) -> None:
        """An async view: Django's handling, less the request signals, whose receivers
        would each cost a hop to a thread. The view runs its own database work in request
        threads, each giving its connection back (sync/api/views.py). It runs in this task;
        a view that waits listens for its client hanging up itself (config/hangup.py)."""
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            await self.send_response(error_response, send)
            return
        hangup.listen_with(request, functools.partial(self.listen_for_disconnect, receive))
        try:
            response = await self.get_response_async(request)
        except asyncio.CancelledError:
            if not hangup.hung_up(request):
                raise
            # The client is gone: nobody to answer. The cancellation was ours.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return
        response._handler_class = self.__class__
        await self.send_response(response, send)


matrix_asgi_app = MatrixASGIHandler()
portal_asgi_app = ASGIStaticFilesHandler(django_asgi_app)


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"].startswith(MATRIX_PREFIXES):
        await matrix_asgi_app(scope, receive, send)
    else:
        await portal_asgi_app(scope, receive, send)


application = ProtocolTypeRouter({"http": http_app})
