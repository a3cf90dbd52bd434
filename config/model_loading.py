"""Building model instances from rows without ``Model.__init__``.

Loading a row through the ORM calls ``Model.__init__``, which sets every field through
its descriptor and sends the pre_init/post_init signals: about 20 µs for an Event, so a
page of 100 events from /messages or a /sync timeline spent longer building instances
than PostgreSQL spent finding the rows. A fresh instance has no cached relations, so
filling its ``__dict__`` directly gives the same object Django would have built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init


class FastLoadModel(models.Model):
    """Abstract base: rows read with all their columns skip ``Model.__init__``.

    Rows with deferred fields (``only()``/``defer()``), and models that anything listens
    to pre_init or post_init for, take Django's own path.
    """

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: str | None, field_names: Sequence[str], values: Sequence[Any]) -> Self:
        attnames = cls.__dict__.get("_loaded_attnames")
        if attnames is None:
            attnames = tuple(field.attname for field in cls._meta.concrete_fields)
            cls._loaded_attnames = attnames
        if (
            len(values) != len(attnames)
            or pre_init.has_listeners(cls)
            or post_init.has_listeners(cls)
        ):
            return super().from_db(db, field_names, values)
        new = cls.__new__(cls)
        state = ModelState()
        state.adding = False
        state.db = db
        fields = new.__dict__
        fields.update(zip(attnames, values, strict=True))
        fields["_state"] = state
        return new
