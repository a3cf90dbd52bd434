"""Stream positions: the lowest layer, shared by every app that feeds /sync."""

from __future__ import annotations

from django.db import models


class StreamPosition(models.Model):
    """The last position handed out on a stream; its row lock orders writers."""

    name = models.CharField(max_length=64, unique=True)
    position = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}@{self.position}"
