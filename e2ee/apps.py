from django.apps import AppConfig


class E2eeConfig(AppConfig):
    name = "e2ee"
    verbose_name = "End-to-end encryption"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save, pre_save

        from accounts.models import Device
        from accounts.signals import device_renamed, user_deactivated
        from e2ee import signals
        from e2ee.federation import edus
        from e2ee.services import to_device
        from e2ee.sync_section import (
            KEY_COUNTS,
            device_lists_section,
            key_counts_along,
            one_time_keys_section,
            to_device_section,
        )
        from federation.edus import register_edu_handler
        from rooms.hooks import register_event_persisting
        from sync import providers

        providers.register_top_level(to_device_section)
        providers.register_top_level(device_lists_section)
        providers.register_top_level(one_time_keys_section)
        providers.register_read_along(KEY_COUNTS, key_counts_along)
        pre_save.connect(signals.refuse_cross_signing_key_as_device_id, sender=Device)
        post_save.connect(signals.device_saved, sender=Device)
        post_delete.connect(signals.device_deleted, sender=Device)
        device_renamed.connect(signals.device_renamed)
        user_deactivated.connect(signals.user_deactivated)
        # Other servers' to-device messages (PUT /send).
        register_edu_handler(to_device.DIRECT_TO_DEVICE, to_device.receive_direct_to_device)
        register_event_persisting(signals.membership_persisting)
        # Other servers' device list and cross-signing updates (PUT /send).
        register_edu_handler(edus.DEVICE_LIST_UPDATE, edus.receive_device_list_update)
        register_edu_handler(edus.SIGNING_KEY_UPDATE, edus.receive_signing_key_update)
