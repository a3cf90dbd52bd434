from tests.federation.helpers import carol, network

__all__ = ["carol", "network"]
