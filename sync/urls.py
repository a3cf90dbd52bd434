from django.urls import re_path

from sync.api import keys_changes, legacy, views

urlpatterns = [
    re_path(r"^_matrix/client/(?:r0|v3)/sync$", views.sync),
    re_path(r"^_matrix/client/(?:r0|v3)/events$", views.events),
    re_path(r"^_matrix/client/(?:r0|v3)/initialSync$", legacy.InitialSyncView.as_view()),
    re_path(
        r"^_matrix/client/(?:r0|v3)/rooms/(?P<room_id>[^/]+)/initialSync$",
        legacy.RoomInitialSyncView.as_view(),
    ),
    re_path(r"^_matrix/client/(?:r0|v3)/keys/changes$", keys_changes.KeysChangesView.as_view()),
]
