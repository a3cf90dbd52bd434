from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConfigConfig(AppConfig):
    name = "config"
    verbose_name = "Configuration"

    def ready(self) -> None:
        from config.memory import return_large_blocks

        return_large_blocks()
        # Every Django process (web and worker) configures the Celery app, so that
        # tasks queued with .delay() go to the configured broker.
        from config import celery  # noqa: F401


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with Trellis's site (config.admin_site): a rate-limited login.
    Named in INSTALLED_APPS instead of django.contrib.admin."""

    # Not the config app's own AppConfig: that one is ConfigConfig.
    default = False
    default_site = "config.admin_site.TrellisAdminSite"
