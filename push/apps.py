from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Push notifications"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts.models import Device, User
        from accounts.selectors import register_account_data_default
        from accounts.signals import user_deactivated
        from protocol.push.rules import ruleset
        from push import signals
        from push.delivery import notify_receipt_moved
        from push.models import Pusher
        from push.services.actions import prepare_push_actions
        from push.services.rules import PUSH_RULES
        from rooms import hooks

        # m.push_rules before the user first changes a rule: the server-default rules.
        register_account_data_default(
            PUSH_RULES, lambda user_id: {"global": ruleset(user_id, None)}
        )
        # The push rules' verdicts, written with each event.
        hooks.register_event_persisting(prepare_push_actions)
        # A read receipt changes the unread count: the user's gateways are told.
        hooks.register_receipt_moved(notify_receipt_moved)
        # Pushers go with the device that set them and with the account.
        post_delete.connect(signals.device_deleted, sender=Device)
        post_delete.connect(signals.user_deleted, sender=User)
        user_deactivated.connect(signals.user_deactivated)
        post_save.connect(signals.pusher_written, sender=Pusher)
        post_delete.connect(signals.pusher_written, sender=Pusher)
