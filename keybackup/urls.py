from django.urls import re_path

from keybackup.api import views

# Clients from before v1.1 use /r0/ for key backups; both prefixes answer.
C = r"^_matrix/client/(?:r0|v3)/room_keys/"

urlpatterns = [
    re_path(C + r"version$", views.VersionsView.as_view()),
    re_path(C + r"version/(?P<version>[^/]+)$", views.VersionView.as_view()),
    re_path(C + r"keys$", views.KeysView.as_view()),
    re_path(C + r"keys/(?P<room_id>[^/]+)$", views.RoomKeysView.as_view()),
    # Megolm session IDs are standard base64, often with a "/": clients send it as %2F
    # (routed encoded, config/paths.py), some as a bare "/", so the session ID is the
    # whole rest of the path.
    re_path(C + r"keys/(?P<room_id>[^/]+)/(?P<session_id>.+)$", views.SessionKeyView.as_view()),
]
