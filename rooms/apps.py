from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from accounts.signals import profile_changed, user_deactivated
        from config import process_caches
        from federation.edus import register_edu_handler
        from rooms import federation_out, hooks, signals, state, sync_providers
        from rooms.federation import edus
        from rooms.services.typing import do_expire_typing
        from sync import hub, providers

        user_deactivated.connect(signals.leave_all_rooms_on_deactivation)
        profile_changed.connect(signals.propagate_profile_change)
        providers.register_ephemeral(sync_providers.typing_events)
        providers.register_ephemeral(sync_providers.receipt_events)
        hub.register_poll_hook(do_expire_typing)
        # Events made here go to the other servers in their rooms.
        hooks.register_event_persisting(federation_out.queue_local_event)
        # Guests leave a room that stops letting them join (Guest access).
        hooks.register_event_persisting(signals.remove_guests_on_revocation)
        # Other servers' typing notifications and receipts (PUT /send).
        register_edu_handler(edus.TYPING, edus.receive_typing)
        register_edu_handler(edus.RECEIPT, edus.receive_receipts)
        # rooms.state keeps the state group at each settled stream position.
        process_caches.register(state.forget_cached_positions)
