from django.apps import AppConfig


class PushConfig(AppConfig):
    name = "push"
    verbose_name = "Push notifications"

    def ready(self) -> None:
        from accounts.selectors import register_account_data_default
        from protocol.push.rules import ruleset
        from push.services.actions import do_write_push_actions
        from push.services.rules import PUSH_RULES
        from rooms import hooks

        # m.push_rules before the user first changes a rule: the server-default rules.
        register_account_data_default(
            PUSH_RULES, lambda user_id: {"global": ruleset(user_id, None)}
        )
        # The push rules' verdicts, written with each event.
        hooks.register_event_persisted(do_write_push_actions)
