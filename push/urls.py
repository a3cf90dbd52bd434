from django.urls import URLPattern, URLResolver, re_path

from push.api import notifications

# The push capabilities add their routes here: /pushrules, /pushers, /notifications.
urlpatterns: list[URLPattern | URLResolver] = [
    re_path(
        r"^_matrix/client/(?:r0|v3)/notifications$",
        notifications.NotificationsView.as_view(),
    ),
]
