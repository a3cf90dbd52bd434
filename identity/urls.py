from django.urls import re_path

from identity.api import views

V2 = r"^_matrix/identity/v2/"

urlpatterns = [
    re_path(r"^_matrix/identity/versions$", views.VersionsView.as_view()),
    re_path(r"^_matrix/identity/v2/?$", views.StatusView.as_view()),
    re_path(V2 + r"account/register$", views.RegisterView.as_view()),
    re_path(V2 + r"account$", views.AccountView.as_view()),
    re_path(V2 + r"account/logout$", views.LogoutView.as_view()),
    re_path(V2 + r"terms$", views.TermsView.as_view()),
    # Before pubkey/{keyId}, which would take "isvalid" for a key ID.
    re_path(V2 + r"pubkey/isvalid$", views.PubkeyIsValidView.as_view()),
    re_path(V2 + r"pubkey/ephemeral/isvalid$", views.EphemeralPubkeyIsValidView.as_view()),
    re_path(V2 + r"pubkey/(?P<key_id>[^/]+)$", views.PubkeyView.as_view()),
    re_path(V2 + r"validate/email/requestToken$", views.EmailRequestTokenView.as_view()),
    re_path(V2 + r"validate/msisdn/requestToken$", views.MsisdnRequestTokenView.as_view()),
    re_path(
        V2 + r"validate/(?P<medium>email|msisdn)/submitToken$", views.SubmitTokenView.as_view()
    ),
    re_path(V2 + r"3pid/getValidated3pid$", views.GetValidated3pidView.as_view()),
    re_path(V2 + r"3pid/bind$", views.BindView.as_view()),
    re_path(V2 + r"3pid/unbind$", views.UnbindView.as_view()),
    re_path(V2 + r"hash_details$", views.HashDetailsView.as_view()),
    re_path(V2 + r"lookup$", views.LookupView.as_view()),
    re_path(V2 + r"store-invite$", views.StoreInviteView.as_view()),
    re_path(V2 + r"sign-ed25519$", views.SignEd25519View.as_view()),
]
