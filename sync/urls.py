from django.urls import re_path

from sync.api import keys_changes, views

urlpatterns = [
    re_path(r"^_matrix/client/(?:r0|v3)/sync$", views.sync),
    re_path(r"^_matrix/client/(?:r0|v3)/events$", views.events),
    re_path(r"^_matrix/client/(?:r0|v3)/keys/changes$", keys_changes.KeysChangesView.as_view()),
]
