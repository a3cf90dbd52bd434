"""Reads of users' third-party identifiers (accounts/services/threepids.py writes them)."""

from __future__ import annotations

from accounts.models import Medium, User, UserThreepid


def owner_of(medium: str, address: str) -> User | None:
    """The user ``address`` (canonical) belongs to, if any."""
    found = (
        UserThreepid.objects.select_related("user").filter(medium=medium, address=address).first()
    )
    return found.user if found is not None else None


def threepids_of(user: User) -> list[UserThreepid]:
    """The user's addresses, emails first, each medium by address."""
    return list(UserThreepid.objects.filter(user=user).order_by("medium", "address"))


def emails_of(user: User) -> list[str]:
    return list(
        UserThreepid.objects.filter(user=user, medium=Medium.EMAIL)
        .order_by("address")
        .values_list("address", flat=True)
    )
