from django.urls import re_path

from sync.api import views

urlpatterns = [
    re_path(r"^_matrix/client/(?:r0|v3)/sync$", views.sync),
]
