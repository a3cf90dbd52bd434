from django.apps import AppConfig


class PresenceConfig(AppConfig):
    name = "presence"
    verbose_name = "Presence"

    def ready(self) -> None:
        from presence.sync_section import presence_section, record_sync
        from sync import providers

        providers.register_activity(record_sync)
        providers.register_top_level(presence_section)
