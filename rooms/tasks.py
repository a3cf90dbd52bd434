"""Celery tasks for rooms: each loads by ID and calls a service."""

from __future__ import annotations

from celery import shared_task

from rooms.federation import transactions
from rooms.services import membership

# A profile change reaches the user's rooms this many at a time, each batch queued
# this long after the last one ended: a user in hundreds of rooms has the worker (and,
# on SQLite, the database's one writer) busy in short stretches, between which their
# own requests and everyone else's go through.
PROFILE_ROOMS_PER_BATCH = 20
PROFILE_BATCH_PAUSE_S = 0.25


@shared_task(bind=True, max_retries=5, default_retry_delay=5)
def propagate_profile(self: object, user_id: str, after_room: int = 0) -> int:
    """Send fresh m.room.member events carrying the user's profile to their rooms, a
    batch at a time: this run's rooms after the room ``after_room``, then the next run
    is queued for the rest."""
    done = membership.do_refresh_member_profiles(
        user_id, after_room=after_room, limit=PROFILE_ROOMS_PER_BATCH
    )
    if done.resume_after is not None:
        propagate_profile.apply_async(
            (user_id, done.resume_after), countdown=PROFILE_BATCH_PAUSE_S
        )
    return done.changed


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
