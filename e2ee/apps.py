from django.apps import AppConfig


class E2eeConfig(AppConfig):
    name = "e2ee"
    verbose_name = "End-to-end encryption"

    def ready(self) -> None:
        from e2ee.sync_section import to_device_section
        from sync import providers

        providers.register_top_level(to_device_section)
