from django.urls import re_path

from e2ee.api import keys, views
from e2ee.federation import views as federation

C = r"^_matrix/client/(?:r0|v3)/"

urlpatterns = [
    re_path(
        C + r"sendToDevice/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)$",
        views.SendToDeviceView.as_view(),
    ),
    re_path(C + r"keys/upload$", keys.KeysUploadView.as_view()),
    re_path(C + r"keys/query$", keys.KeysQueryView.as_view()),
    re_path(C + r"keys/claim$", keys.KeysClaimView.as_view()),
    # Cross-signing arrived after r0; its unstable prefix is still used by older clients.
    re_path(
        r"^_matrix/client/(?:v3|unstable)/keys/device_signing/upload$",
        keys.DeviceSigningUploadView.as_view(),
    ),
    re_path(
        r"^_matrix/client/(?:v3|unstable)/keys/signatures/upload$",
        keys.SignaturesUploadView.as_view(),
    ),
]

# Server-Server API: local users' keys and devices for other servers (X-Matrix signed).
F = r"^_matrix/federation/v1/"
urlpatterns += [
    re_path(F + r"user/keys/query$", federation.UserKeysQueryView.as_view()),
    re_path(F + r"user/keys/claim$", federation.UserKeysClaimView.as_view()),
    re_path(F + r"user/devices/(?P<user_id>[^/]+)$", federation.UserDevicesView.as_view()),
]
