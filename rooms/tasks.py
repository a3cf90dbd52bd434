"""Celery tasks for rooms: each loads by ID and calls a service."""

from __future__ import annotations

from celery import shared_task

from rooms.federation import transactions
from rooms.services import membership


@shared_task(bind=True, max_retries=5, default_retry_delay=5)
def propagate_profile(self: object, user_id: str) -> int:
    """Send fresh m.room.member events carrying the user's profile to their rooms."""
    return membership.do_refresh_member_profiles(user_id)


@shared_task(bind=True, max_retries=5, default_retry_delay=5)
def remove_guests(self: object, room_id: str) -> int:
    """The room's local guests leave it, its guest access being revoked."""
    return membership.do_remove_guests(room_id)


@shared_task
def process_inbound_pdus(room_id: str) -> int:
    """Run a room's queued inbound PDUs through the pipeline (one worker per room)."""
    return transactions.process_room_queue(room_id)


@shared_task
def resume_inbound_pdus() -> int:
    """Periodic: hand to a worker every room whose queued inbound PDUs nobody is taking
    (a lost hand-over, a worker that died mid-way)."""
    room_ids = transactions.rooms_to_resume()
    for room_id in room_ids:
        process_inbound_pdus.delay(room_id)
    return len(room_ids)
