from django.urls import path, re_path

from accounts.api import account, auth, devices, fallback, tags, threepid_binding, threepids
from accounts.models import Medium
from accounts.services.threepids import ADD, PASSWORD, REGISTER, SUBMIT_PATH

# Old clients still use /r0/ for the account endpoints; both prefixes answer.
C = r"^_matrix/client/(?:r0|v3)/"
# sytest (tests/54identity.pl) still binds and unbinds through the /unstable/ prefix of
# MSC2290, as Synapse serves it.
C3PID = r"^_matrix/client/(?:r0|v3|unstable)/account/3pid/"

# POST .../{medium}/requestToken: path prefix -> purpose of the validation session.
REQUEST_TOKEN_PREFIXES = {"register": REGISTER, "account/password": PASSWORD, "account/3pid": ADD}

urlpatterns = [
    re_path(C + r"register$", auth.RegisterView.as_view()),
    re_path(C + r"register/available$", auth.RegisterAvailableView.as_view()),
    path(
        "_matrix/client/v1/register/m.login.registration_token/validity",
        auth.RegistrationTokenValidityView.as_view(),
    ),
    re_path(C + r"login$", auth.LoginView.as_view()),
    path("_matrix/client/v1/login/get_token", auth.LoginTokenView.as_view()),
    re_path(C + r"auth/(?P<auth_type>[^/]+)/fallback/web$", fallback.auth_fallback),
    path("_matrix/static/client/login/", fallback.login_fallback),
    re_path(C + r"refresh$", auth.RefreshView.as_view()),
    re_path(C + r"logout$", auth.LogoutView.as_view()),
    re_path(C + r"logout/all$", auth.LogoutAllView.as_view()),
    re_path(C + r"account/whoami$", account.WhoAmIView.as_view()),
    re_path(C + r"account/password$", account.PasswordView.as_view()),
    re_path(C + r"account/deactivate$", account.DeactivateView.as_view()),
    re_path(C3PID + r"bind$", threepid_binding.BindView.as_view()),
    re_path(C3PID + r"unbind$", threepid_binding.UnbindView.as_view()),
    re_path(C3PID + r"delete$", threepid_binding.DeleteView.as_view()),
    re_path(C + r"devices$", devices.DevicesView.as_view()),
    re_path(C + r"devices/(?P<device_id>[^/]+)$", devices.DeviceView.as_view()),
    re_path(C + r"delete_devices$", devices.DeleteDevicesView.as_view()),
    re_path(C + r"profile/(?P<user_id>[^/]+)$", account.ProfileView.as_view()),
    re_path(C + r"profile/(?P<user_id>[^/]+)/(?P<key>[^/]+)$", account.ProfileFieldView.as_view()),
    re_path(
        C + r"user/(?P<user_id>[^/]+)/account_data/(?P<data_type>[^/]+)$",
        account.AccountDataView.as_view(),
    ),
    re_path(
        C + r"user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/account_data/(?P<data_type>[^/]+)$",
        account.AccountDataView.as_view(),
    ),
    re_path(
        C + r"user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/tags$", tags.TagsView.as_view()
    ),
    re_path(
        C + r"user/(?P<user_id>[^/]+)/rooms/(?P<room_id>[^/]+)/tags/(?P<tag>[^/]+)$",
        tags.TagView.as_view(),
    ),
    re_path(C + r"user/(?P<user_id>[^/]+)/filter$", account.FilterCreateView.as_view()),
    re_path(
        C + r"user/(?P<user_id>[^/]+)/filter/(?P<filter_id>[^/]+)$", account.FilterView.as_view()
    ),
    re_path(
        C + r"user/(?P<user_id>[^/]+)/openid/request_token$",
        account.OpenIdRequestTokenView.as_view(),
    ),
    path("_synapse/admin/v1/register", auth.SharedSecretRegisterView.as_view()),
    *[
        re_path(
            C + rf"{prefix}/{medium.value}/requestToken$",
            threepids.RequestTokenView.as_view(medium=medium.value, purpose=purpose),
        )
        for prefix, purpose in REQUEST_TOKEN_PREFIXES.items()
        for medium in Medium
    ],
    path(SUBMIT_PATH, threepids.SubmitTokenView.as_view()),
    re_path(C + r"account/3pid$", threepids.ThreepidsView.as_view()),
    re_path(C + r"account/3pid/add$", threepids.AddThreepidView.as_view()),
]
