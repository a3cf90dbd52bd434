"""Building model instances from rows without ``Model.__init__``, and from hand-written SQL.

Loading a row through the ORM calls ``Model.__init__``, which sets every field through
its descriptor and sends the pre_init/post_init signals: about 20 µs for an Event, so a
page of 100 events from /messages or a /sync timeline spent longer building instances
than PostgreSQL spent finding the rows. A fresh instance has no cached relations, so
filling its ``__dict__`` directly gives the same object Django would have built.

For the few hottest reads, building and compiling the ORM query cost more than running
it (0.4 ms for a one-condition filter on this project's benchmark machine); those are
written as SQL, and :func:`select_columns` / :func:`load_rows` keep them in step with
the models.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, Self, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=models.Model)


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
        if len(values) != len(attnames) or (
            # Most processes have no init receivers at all; has_listeners is the exact test.
            (pre_init.receivers or post_init.receivers)
            and (pre_init.has_listeners(cls) or post_init.has_listeners(cls))
        ):
            return super().from_db(db, field_names, values)
        new = cls.__new__(cls)
        fields = new.__dict__
        fields.update(zip(attnames, values, strict=True))
        fields["_state"] = loaded_state(db)
        return new


def loaded_state(db: str | None) -> ModelState:
    """The ``_state`` of an instance read from the database ``db`` (no cached relations)."""
    state = ModelState()
    state.adding = False
    state.db = db
    return state


def table_name(model: type[models.Model]) -> str:
    """The model's table, quoted, for a hand-written statement."""
    return connection.ops.quote_name(model._meta.db_table)


def select_columns(model: type[models.Model]) -> str:
    """The model's columns, quoted and qualified by its table, in field order: the start of
    a hand-written SELECT whose rows :func:`load_rows` turns into instances."""
    return _select_columns(model, connection.vendor)


@functools.cache
def _select_columns(model: type[models.Model], vendor: str) -> str:
    quote = connection.ops.quote_name
    prefix = f"{quote(model._meta.db_table)}."
    return ", ".join(prefix + quote(field.column) for field in model._meta.concrete_fields)


def load_rows(
    model: type[M], rows: Iterable[Sequence[Any]], *, extra: Sequence[str] = ()
) -> list[M]:
    """Instances of ``model`` from rows that begin with :func:`select_columns`'s columns;
    the columns after them are set as the attributes named in ``extra`` (as annotations
    are). Values pass through the converters the ORM would apply (JSON decoding, SQLite's
    booleans and dates)."""
    fields = model._meta.concrete_fields
    count = len(fields)
    # The connection of this thread, looked up once rather than through the proxy per row.
    db = connections[DEFAULT_DB_ALIAS]
    converters = _converters(model, db)
    names = [field.attname for field in fields]
    loaded = []
    for row in rows:
        values = list(row[:count])
        for index, functions, column in converters:
            value = values[index]
            for function in functions:
                value = function(value, column, db)
            values[index] = value
        instance = model.from_db(db.alias, names, values)
        for name, value in zip(extra, row[count:], strict=True):
            setattr(instance, name, value)
        loaded.append(instance)
    return loaded


_converter_cache: dict[tuple[type[models.Model], str], list[tuple[int, list[Any], Any]]] = {}


def _converters(model: type[models.Model], db: Any) -> list[tuple[int, list[Any], Any]]:
    key = (model, db.vendor)
    found = _converter_cache.get(key)
    if found is None:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            functions = [*db.ops.get_db_converters(column), *field.get_db_converters(db)]
            if functions:
                found.append((index, functions, column))
        _converter_cache[key] = found
    return found
