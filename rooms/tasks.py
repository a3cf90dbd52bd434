"""Celery tasks for rooms: each loads by ID and calls a service."""

from __future__ import annotations

from celery import shared_task

from rooms.services import membership


@shared_task(bind=True, max_retries=5, default_retry_delay=5)
def propagate_profile(self: object, user_id: str) -> int:
    """Send fresh m.room.member events carrying the user's profile to their rooms."""
    return membership.do_refresh_member_profiles(user_id)
