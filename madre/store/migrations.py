"""Schema set-up and migrations.

On start the five tables are created if missing; then every column the models declare that
a table lacks is added (`playhouse.migrate`), so a database made by an older Madre keeps
working. Madre's schema changes are additive (new nullable columns, new indexes); a change
that is not gets its own step here, written for it.
"""

from __future__ import annotations

import copy
import logging

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator, migrate

from madre.store.db import is_sqlite
from madre.store.models import Models

log = logging.getLogger("madre.store")


def _migrator(database: peewee.Database) -> SchemaMigrator:
    return SqliteMigrator(database) if is_sqlite(database) else PostgresqlMigrator(database)


def ensure_schema(database: peewee.Database, models: Models) -> list[str]:
    """Create missing tables, add missing columns and indexes; the columns added, named."""
    added: list[str] = []
    with database.connection_context():
        existing = set(database.get_tables())
        database.create_tables(
            [m for m in models.all() if m._meta.table_name not in existing], safe=True)
        migrator = _migrator(database)
        for model in models.all():
            table = model._meta.table_name
            if table not in existing:
                continue
            present = {c.name for c in database.get_columns(table)}
            missing = [f for f in model._meta.sorted_fields if f.column_name not in present]
            for field in missing:
                if not field.null and field.default is None:
                    raise RuntimeError(f"cannot add required column {table}.{field.column_name} "
                                       "without a default: write a migration step for it")
                column = copy.copy(field)
                column.index = column.unique = False  # indexes come after, all at once
                # Added as NULL-able (existing rows get the default): making a column NOT NULL
                # on SQLite means rebuilding the table, not worth it for an added column.
                column.null = True
                with database.atomic():
                    migrate(migrator.add_column(table, field.column_name, column))
                added.append(f"{table}.{field.column_name}")
            # Indexes after the columns they cover exist (a new index may name a new column).
            model._schema.create_indexes(safe=True)
    if added:
        log.warning("schema migrated: added %s", ", ".join(added))
    return added
