"""The demo web client: one page whose ES modules talk to this server's Client-Server
API from the browser (webclient/static/webclient/). The server only hands out files."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.generic import TemplateView

# Everything the page loads comes from this origin: no inline script or style, no
# outside asset. Call media arrive as MediaStreams, which need no source.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


class ClientView(TemplateView):
    """GET /client/: the page; the client finds the homeserver at the page's origin."""

    template_name = "webclient/index.html"
    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response["Cache-Control"] = "no-cache"
        return response
