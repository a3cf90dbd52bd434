"""/_synapse/admin endpoints: rooms."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
