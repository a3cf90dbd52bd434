from django.urls import path
from django.views.generic import RedirectView

from webclient.views import ClientView

urlpatterns = [
    path("client/", ClientView.as_view(), name="webclient"),
    path("client", RedirectView.as_view(url="/client/", permanent=False)),
]
