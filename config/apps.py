from django.apps import AppConfig


class ConfigConfig(AppConfig):
    name = "config"
    verbose_name = "Configuration"

    def ready(self) -> None:
        from config.memory import return_large_blocks

        return_large_blocks()
        # Every Django process (web and worker) configures the Celery app, so that
        # tasks queued with .delay() go to the configured broker.
        from config import celery  # noqa: F401
