from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Push notifications"

    def ready(self) -> None:
        from push.services.actions import do_write_push_actions
        from rooms import hooks

        hooks.register_event_persisted(do_write_push_actions)
