from django.urls import re_path

from federation.api import views

urlpatterns = [
    re_path(r"^_matrix/key/v2/server$", views.ServerKeysView.as_view()),
    # The deprecated form naming a key ID (servers answer with all their keys; sytest and
    # older servers still ask it).
    re_path(r"^_matrix/key/v2/server/(?P<key_id>[^/]*)$", views.ServerKeysView.as_view()),
    re_path(
        r"^_matrix/key/v2/query/(?P<server_name>[^/]+)(?:/(?P<key_id>[^/]+))?$",
        views.KeyQueryView.as_view(),
    ),
    re_path(r"^_matrix/key/v2/query$", views.BatchKeyQueryView.as_view()),
    re_path(r"^_matrix/federation/v1/openid/userinfo$", views.OpenIdUserInfoView.as_view()),
]
