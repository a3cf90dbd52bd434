from django.apps import AppConfig


class PresenceConfig(AppConfig):
    name = "presence"
    verbose_name = "Presence"

    def ready(self) -> None:
        from federation.edus import register_edu_handler
        from presence import edus
        from presence.sync_section import presence_section, record_sync
        from sync import providers

        providers.register_activity(record_sync)
        providers.register_top_level(presence_section)
        # Other servers' users' presence (PUT /send).
        register_edu_handler(edus.PRESENCE, edus.receive_presence)
