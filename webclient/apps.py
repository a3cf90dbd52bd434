import mimetypes

from django.apps import AppConfig


class WebclientConfig(AppConfig):
    name = "webclient"
    verbose_name = "Web client"

    def ready(self) -> None:
        # Static files get their Content-Type from mimetypes, which on Python 3.11 says
        # application/javascript for .js unless the system's mime.types says otherwise;
        # RFC 9239 makes text/javascript the one type for the client's ES modules.
        mimetypes.add_type("text/javascript", ".js")
