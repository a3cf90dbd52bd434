from django.apps import AppConfig


class KeyBackupConfig(AppConfig):
    name = "keybackup"
    verbose_name = "Key backup"

    def ready(self) -> None:
        from accounts.signals import user_deactivated
        from keybackup import signals

        user_deactivated.connect(signals.delete_backups_on_deactivation)
