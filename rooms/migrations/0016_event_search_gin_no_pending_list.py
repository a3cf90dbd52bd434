"""PostgreSQL: the search index's GIN index without a pending list (``fastupdate = off``),
and the entries pending now moved into the index. SQLite is unchanged.

With ``fastupdate`` on (the default), rows inserted go to a pending list of up to
``gin_pending_list_limit`` (4 MB: about 13,000 messages) that every search reads through
in full, besides the index, until a vacuum or the list's filling moves them in. In a
100,000-message room a common word took 14 ms in the index with 13,000 rows pending
against 2.5 ms with none, and the planner, costing the list, chose to read the whole
table instead. Messages arrive one at a time, where the pending list saves little:
inserting a search row costs about 0.06 ms more without it (0.13 ms against 0.06).
"""

from django.db import migrations

POSTGRES_FORWARD = [
    "ALTER INDEX event_search_vector SET (fastupdate = off)",
    "SELECT gin_clean_pending_list('event_search_vector'::regclass)",
]
POSTGRES_BACKWARD = ["ALTER INDEX event_search_vector RESET (fastupdate)"]


def _run(schema_editor, statements):
    if schema_editor.connection.vendor == "postgresql":
        for sql in statements:
            schema_editor.execute(sql)


def forward(apps, schema_editor):
    _run(schema_editor, POSTGRES_FORWARD)


def backward(apps, schema_editor):
    _run(schema_editor, POSTGRES_BACKWARD)


class Migration(migrations.Migration):

    dependencies = [
        ("rooms", "0015_partial_state"),
    ]

    operations = [migrations.RunPython(forward, backward)]
