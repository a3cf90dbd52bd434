"""Mail to users: rendered from templates/mail/, delivered by a Celery task with retries.

A request never waits on the SMTP server: :func:`send_templated` renders the mail and
queues its delivery once the caller's transaction commits; ``accounts.tasks.deliver_mail``
retries with backoff while the SMTP server is slow or down.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of ``templates/mail/<template>``."""
    context = {"server_name": settings.SERVER_NAME, **context}
    subject = render_to_string(f"mail/{template}.subject.txt", context).strip()
    text = render_to_string(f"mail/{template}.txt", context)
    html = render_to_string(f"mail/{template}.html", context)
    return " ".join(subject.split()), text, html


def send_templated(to: str, template: str, context: dict[str, Any]) -> None:
    """Queue a mail to ``to``, sent after the current transaction commits."""
    from accounts.tasks import deliver_mail

    subject, text, html = render(template, context)
    transaction.on_commit(lambda: deliver_mail.delay(to, subject, text, html))


def deliver(to: str, subject: str, text: str, html: str) -> None:
    """Hand one mail to the configured backend now (the task's body)."""
    from django.core.mail import EmailMultiAlternatives

    message = EmailMultiAlternatives(subject, text, settings.EMAIL_FROM, [to])
    message.attach_alternative(html, "text/html")
    message.send()
