"""The Celery app. Workers run the same services as the web processes."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trellis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    "purge-expired-auth-state": {
        "task": "accounts.tasks.purge_expired_auth_state",
        "schedule": 3600.0,
    },
}
