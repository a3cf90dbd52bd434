from django.urls import re_path

from media.api import views

CLIENT_V1 = r"^_matrix/client/v1/media/"
MEDIA = r"^_matrix/media/(?:r0|v3)/"
SERVER = r"(?P<server_name>[^/]+)/(?P<media_id>[^/]+)"
# Optional; an empty one (a trailing slash, as matrix-nio sends) means none.
FILE_NAME = r"(?:/(?P<file_name>[^/]*))?"

urlpatterns = [
    # Authenticated media (Matrix 1.11).
    re_path(CLIENT_V1 + r"config$", views.ConfigView.as_view()),
    re_path(CLIENT_V1 + r"preview_url$", views.PreviewUrlView.as_view()),
    re_path(CLIENT_V1 + rf"download/{SERVER}{FILE_NAME}$", views.DownloadView.as_view()),
    re_path(CLIENT_V1 + rf"thumbnail/{SERVER}$", views.ThumbnailView.as_view()),
    # Uploads stay under /_matrix/media.
    re_path(MEDIA + r"upload$", views.UploadView.as_view()),
    re_path(r"^_matrix/media/v1/create$", views.CreateView.as_view()),
    re_path(MEDIA + rf"upload/{SERVER}$", views.UploadToMediaIdView.as_view()),
    # Deprecated: config and preview_url (authenticated), download and thumbnail
    # (unauthenticated, frozen: see TRELLIS_MEDIA_LEGACY_UNAUTHENTICATED).
    re_path(MEDIA + r"config$", views.ConfigView.as_view()),
    re_path(MEDIA + r"preview_url$", views.PreviewUrlView.as_view()),
    re_path(MEDIA + rf"download/{SERVER}{FILE_NAME}$", views.LegacyDownloadView.as_view()),
    re_path(MEDIA + rf"thumbnail/{SERVER}$", views.LegacyThumbnailView.as_view()),
    # Federation (Server-Server API, "Content Repository").
    re_path(
        r"^_matrix/federation/v1/media/download/(?P<media_id>[^/]+)$",
        views.FederationDownloadView.as_view(),
    ),
    re_path(
        r"^_matrix/federation/v1/media/thumbnail/(?P<media_id>[^/]+)$",
        views.FederationThumbnailView.as_view(),
    ),
]
