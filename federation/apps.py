from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation"

    def ready(self) -> None:
        from accounts.selectors import register_remote_profile_lookup
        from federation.queries import query_remote_profile

        # Clients' GET /profile/{userId} for users of other servers.
        register_remote_profile_lookup(query_remote_profile)
