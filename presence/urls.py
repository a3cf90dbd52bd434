from django.urls import re_path

from presence.api import views

C = r"^_matrix/client/(?:r0|v3)/"

urlpatterns = [
    re_path(C + r"presence/(?P<user_id>[^/]+)/status$", views.PresenceStatusView.as_view()),
]
