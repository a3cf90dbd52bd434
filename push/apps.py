from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Push notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts.models import Device, User
        from accounts.signals import user_deactivated
        from push import signals
        from push.models import Pusher

        post_delete.connect(signals.device_deleted, sender=Device)
        post_delete.connect(signals.user_deleted, sender=User)
        user_deactivated.connect(signals.user_deactivated)
        post_save.connect(signals.pusher_written, sender=Pusher)
        post_delete.connect(signals.pusher_written, sender=Pusher)
