from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        from accounts.signals import profile_changed, user_deactivated
        from rooms import signals

        user_deactivated.connect(signals.leave_all_rooms_on_deactivation)
        profile_changed.connect(signals.propagate_profile_change)
