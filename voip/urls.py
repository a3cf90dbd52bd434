from django.urls import re_path

from voip.api import views

C = r"^_matrix/client/(?:r0|v3)/"

urlpatterns = [
    re_path(C + r"voip/turnServer$", views.TurnServerView.as_view()),
]
