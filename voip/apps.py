from django.apps import AppConfig


class VoipConfig(AppConfig):
    name = "voip"
    verbose_name = "VoIP"
