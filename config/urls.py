from django.contrib import admin
from django.urls import include, path, re_path

from config import views

urlpatterns = [
    # A person opening the server's address in a browser: what this is, where to go.
    path("", views.landing),
    path("_matrix/client/versions", views.VersionsView.as_view()),
    re_path(r"^_matrix/client/(?:r0|v3)/capabilities$", views.CapabilitiesView.as_view()),
    path(".well-known/matrix/client", views.WellKnownClientView.as_view()),
    path(".well-known/matrix/server", views.WellKnownServerView.as_view()),
    path(".well-known/matrix/support", views.WellKnownSupportView.as_view()),
    re_path(
        r"^_matrix/client/(?:r0|v3)/thirdparty/protocols$", views.ThirdPartyProtocolsView.as_view()
    ),
    re_path(
        r"^_matrix/client/(?:r0|v3)/thirdparty/protocol/(?P<protocol>[^/]+)$",
        views.ThirdPartyProtocolView.as_view(),
    ),
    re_path(
        r"^_matrix/client/(?:r0|v3)/thirdparty/(?:location|user)/(?P<protocol>[^/]+)$",
        views.ThirdPartyQueryView.as_view(),
    ),
    re_path(
        r"^_matrix/client/(?:r0|v3)/thirdparty/location$",
        views.ThirdPartyLocationByAliasView.as_view(),
    ),
    re_path(r"^_matrix/client/(?:r0|v3)/thirdparty/user$", views.ThirdPartyUserByIdView.as_view()),
    path("", include("accounts.urls")),
    path("", include("rooms.urls")),
    path("", include("sync.urls")),
    path("", include("e2ee.urls")),
    path("", include("presence.urls")),
    path("", include("keybackup.urls")),
    path("", include("media.urls")),
    path("", include("push.urls")),
    path("", include("voip.urls")),
    path("", include("identity.urls")),
    path("", include("federation.urls")),
    path("", include("operators.urls")),
    path("admin/", admin.site.urls),
    path("", include("webclient.urls")),
    # Last: every other Matrix path is an endpoint we do not have.
    re_path(r"^_matrix/", views.unrecognized),
    re_path(r"^_synapse/", views.unrecognized),
]

handler400 = "config.views.handler400"
handler404 = "config.views.handler404"
handler500 = "config.views.handler500"
