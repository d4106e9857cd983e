"""The schema's versions and the steps between them (`playhouse.migrate`).

A new database gets the five tables as the models declare them and the newest version. A
database made by an older Madre is taken forward one numbered step at a time; the version
it is at is kept in a `context` row of its own (a database from before versions is 1). On
PostgreSQL the steps run under an advisory lock, so instances starting together do not
race: one migrates, the others wait for it and find nothing left to do.

    madre db status      where a database stands
    madre db migrate     take it to the newest version (start-up does too, unless
                         MADRE_MIGRATE=off, which refuses to start on an old schema)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator, migrate

from madre.errors import ConfigError
from madre.store.db import is_sqlite
from madre.store.models import Models, naive_utcnow

log = logging.getLogger("madre.store")

KEY_SCHEMA_VERSION = "madre:schema_version"
SCOPE_SCHEMA = "schema"
MIGRATION_LOCK = 0x4D414452_45000001  # "MADRE" + 1: the advisory lock key of migrations
EMPTY = -1  # the version of a database without Madre's tables: created at the newest at once


@dataclasses.dataclass(frozen=True)
class Step:
    version: int
    title: str
    apply: Callable[[peewee.Database, Models], None]


@dataclasses.dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: its version, the newest, the steps still to run."""

    version: int
    newest: int
    pending: tuple[Step, ...]

    @property
    def current(self) -> bool:
        return not self.pending

    def describe(self) -> str:
        if self.version == EMPTY:
            return f"empty database: migrate creates the schema at version {self.newest}"
        if self.version == 0:
            return (f"a schema from before versions; newest {self.newest}; to run: "
                    + "; ".join(f"{s.version}: {s.title}" for s in self.pending))
        if self.current:
            return f"schema version {self.version} (the newest)"
        steps = "; ".join(f"{s.version}: {s.title}" for s in self.pending)
        return f"schema version {self.version}, newest {self.newest}; to run: {steps}"


def _migrator(database: peewee.Database) -> SchemaMigrator:
    return SqliteMigrator(database) if is_sqlite(database) else PostgresqlMigrator(database)


def _add_missing_columns(database: peewee.Database, models: Models,
                         only: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Add the model columns a table lacks (all of them, or those `only` names), as
    NULL-able columns holding their default; then the model's indexes."""
    added: list[str] = []
    migrator = _migrator(database)
    for model in models.all():
        table = model._meta.table_name
        wanted = only.get(table, ()) if only is not None else None
        present = {c.name for c in database.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name in present or (wanted is not None and
                                                field.column_name not in wanted):
                continue
            if not field.null and field.default is None:
                raise RuntimeError(f"cannot add required column {table}.{field.column_name} "
                                   "without a default: write a migration step for it")
            column = copy.copy(field)
            column.index = column.unique = False  # indexes come after, all at once
            # Added as NULL-able (existing rows get the default): making a column NOT NULL
            # on SQLite means rebuilding the table, not worth it for an added column.
            column.null = True
            migrate(migrator.add_column(table, field.column_name, column))
            added.append(f"{table}.{field.column_name}")
        model._schema.create_indexes(safe=True)
    return added


def _step_1(database: peewee.Database, models: Models) -> None:
    """Before versions, start-up created the tables missing (the original had only some)
    and added whatever column the models had and a table lacked."""
    existing = set(database.get_tables())
    # Only the tables that are missing: creating an existing one would create its indexes,
    # some over columns the table does not have yet.
    database.create_tables([m for m in models.all() if m._meta.table_name not in existing],
                           safe=True)
    _add_missing_columns(database, models)


def _step_2(database: peewee.Database, models: Models) -> None:
    _add_missing_columns(database, models, only={
        "tasks": ("owner", "lease_until", "epoch"), "intents_log": ("instance_id",)})
    nullable = {c.name: c.null for c in database.get_columns("context")}
    if not nullable.get("task_id", True):
        migrate(_migrator(database).drop_not_null("context", "task_id"))
    models.Task._schema.create_indexes(safe=True)


def _step_3(database: peewee.Database, models: Models) -> None:
    _add_missing_columns(database, models, only={
        "intents_log": ("idempotency_key", "request_hash", "answer_json")})


def _step_4(database: peewee.Database, models: Models) -> None:
    # The index a foreign key gets by default; (task_id, key) covers every lookup it served.
    database.execute_sql("DROP INDEX IF EXISTS context_task_id")


STEPS: tuple[Step, ...] = (
    Step(1, "the five tables, with every column Madre had before versions", _step_1),
    Step(2, "several instances: tasks.owner, lease_until and epoch; intents_log.instance_id; "
            "context rows that belong to no plan", _step_2),
    Step(3, "idempotent intake: intents_log.idempotency_key (unique), request_hash and "
            "answer_json", _step_3),
    Step(4, "context loses its index on task_id alone, which (task_id, key) makes redundant",
         _step_4),
)
NEWEST = STEPS[-1].version


def schema_status(database: peewee.Database, models: Models) -> SchemaStatus:
    with database.connection_context():
        version = _stored_version(database, models)
    return SchemaStatus(version, NEWEST, tuple(s for s in STEPS if s.version > version))


def ensure_schema(database: peewee.Database, models: Models, *, allow_migrate: bool = True
                  ) -> list[str]:
    """Bring the database to the newest version; the titles of the steps that ran. With
    `allow_migrate` off, an older schema stops start-up (ConfigError) instead."""
    with database.connection_context(), _migration_lock(database):
        version = _stored_version(database, models)
        if version == EMPTY:
            database.create_tables(models.all(), safe=True)
            _store_version(database, models, NEWEST, existed=False)
            return [f"created the schema at version {NEWEST}"]
        pending = [s for s in STEPS if s.version > version]
        if pending and not allow_migrate:
            raise ConfigError(
                f"the database schema is at version {version} and this Madre needs {NEWEST}; "
                "run `madre db migrate` (or start with MADRE_MIGRATE=auto)")
        ran = []
        for step in pending:
            with database.atomic():
                step.apply(database, models)
                _store_version(database, models, step.version, existed=True)
            log.warning("schema migrated to version %d: %s", step.version, step.title)
            ran.append(f"{step.version}: {step.title}")
        return ran


def _stored_version(database: peewee.Database, models: Models) -> int:
    """EMPTY for a database without Madre's tables, 0 for one made before versions (by an
    older Madre, or by the original), else the version it says."""
    tables = set(database.get_tables())
    if "tasks" not in tables:
        return EMPTY
    if "context" not in tables:
        return 0
    row = (models.Context.select(models.Context.value)
           .where((models.Context.key == KEY_SCHEMA_VERSION)
                  & (models.Context.scope == SCOPE_SCHEMA))
           .order_by(models.Context.id.desc()).first())
    if row is not None:
        return int(row.value)
    return 0


def _store_version(database: peewee.Database, models: Models, version: int, *,
                   existed: bool) -> None:
    context = models.Context
    updated = 0
    if existed:
        updated = context.update(value=str(version)).where(
            (context.key == KEY_SCHEMA_VERSION) & (context.scope == SCOPE_SCHEMA)).execute()
    if not updated and version >= 2:  # rows of no plan can exist from version 2 on
        context.insert(task_id=None, key=KEY_SCHEMA_VERSION, value=str(version),
                       scope=SCOPE_SCHEMA, created_at=naive_utcnow()).execute()


@contextlib.contextmanager
def _migration_lock(database: peewee.Database) -> Iterator[None]:
    """On PostgreSQL, one migrating instance at a time (a session advisory lock, released
    at the end or when the session dies); SQLite runs one instance per file anyway."""
    if is_sqlite(database):
        yield
        return
    database.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        yield
    finally:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
