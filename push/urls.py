from django.urls import URLPattern, URLResolver, re_path

from push.api import pushers

# The push capabilities add their routes here: /pushrules, /pushers, /notifications.
# Clients from before v1.1 use /r0/; both prefixes answer.
C = r"^_matrix/client/(?:r0|v3)/"

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(C + r"pushers$", pushers.PushersView.as_view()),
    re_path(C + r"pushers/set$", pushers.SetPusherView.as_view()),
]
