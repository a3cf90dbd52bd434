"""The Synapse-compatible admin API, /_synapse/admin/... (one module per aggregate)."""

from operators.api import media, rooms, server, users

urlpatterns = [*users.urlpatterns, *rooms.urlpatterns, *media.urlpatterns, *server.urlpatterns]
