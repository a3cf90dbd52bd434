from django.urls import re_path

from e2ee.api import views

C = r"^_matrix/client/(?:r0|v3)/"

urlpatterns = [
    re_path(
        C + r"sendToDevice/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)$",
        views.SendToDeviceView.as_view(),
    ),
]
