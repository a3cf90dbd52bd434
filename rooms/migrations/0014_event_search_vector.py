"""PostgreSQL: each search row's tsvector stored beside its text (a generated column),
the GIN index on that column instead of on the expression.

Matching used the expression index, but ranking (ts_rank) and any plan that filtered
rows by the expression worked out to_tsvector('english', value) again for every row
it looked at: thousands of times for a common word in a big room. SQLite is unchanged
(its FTS5 table holds the index already).
"""

from django.db import migrations

POSTGRES_FORWARD = [
    "ALTER TABLE rooms_eventsearch ADD COLUMN vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', value)) STORED",
    "CREATE INDEX event_search_vector ON rooms_eventsearch USING GIN (vector)",
    "DROP INDEX IF EXISTS event_search_tsvector",
]
POSTGRES_BACKWARD = [
    "CREATE INDEX event_search_tsvector ON rooms_eventsearch "
    "USING GIN (to_tsvector('english', value))",
    "DROP INDEX IF EXISTS event_search_vector",
    "ALTER TABLE rooms_eventsearch DROP COLUMN IF EXISTS vector",
]


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
        ("rooms", "0013_fill_user_directory"),
    ]

    operations = [migrations.RunPython(forward, backward)]
