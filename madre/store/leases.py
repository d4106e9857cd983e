"""Leases and instances: which Madre runs which plan, and which Madres are alive.

Several instances share one database; each plan that must run has one owner, who holds it
by renewing a lease, and a plan whose owner stopped or died is claimed by another (with the
next epoch, so the old owner's late writes change nothing). This is its own module because
it is its own concern: the plan writes (`repository`) never look at leases beyond carrying
the owner and epoch they are given, and the membership loop (`madre.membership`) is the
only one that asks for these.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import peewee

from madre.model import Status
from madre.store.columns import KEY_INSTANCE, SCOPE_INSTANCE, from_db_time, to_db_time
from madre.store.db import connection, is_sqlite
from madre.store.models import Models, naive_utcnow
from madre.store.ordered import OrderedRows
from madre.store.runtime_reads import IntentRow
from madre.store.sql import Statements

NOTIFY_CHANNEL = "madre"


class Leases:
    """The lease and instance queries of `Repository` (a mixin: it lends them the
    repository's database, models and statements, so callers keep one object to ask).

    The writes run only in the Store actor's transaction, like the repository's; the reads
    run on any thread, each in a pooled connection of its own.
    """

    database: peewee.Database
    m: Models
    sql: Statements
    ordered: OrderedRows

    # ------------------------------------------------------------------ writes (Store actor)

    def renew_leases(self, owner: str, *, lease_until: dt.datetime) -> set[str]:
        """Extend the lease of every plan `owner` runs; the ids of the plans it still owns."""
        cursor = self.database.execute_sql(
            self.sql.sql("renew_leases") + " RETURNING uuid",
            (self.sql.ts(to_db_time(lease_until)), owner))
        return {str(r[0]) for r in cursor.fetchall()}

    def plan_ids_owned(self, owner: str) -> set[str]:
        """The plans that must run which `owner` holds (read inside a write)."""
        task = self.m.Task
        return {r.uuid for r in task.select(task.uuid).where(
            (task.owner == owner)
            & task.status.in_([Status.PENDING.value, Status.RUNNING.value]))}

    def claim_plans(self, owner: str, *, now: dt.datetime, lease_until: dt.datetime,
                    dead_owners: Sequence[str] = (), limit: int = 100) -> list[tuple[str, int]]:
        """Take over plans that must run and have no live owner: none, a lease that ran out,
        or an owner known dead. Each claim makes `owner` the plan's new owner with the next
        epoch, so whatever the old owner still writes for it changes nothing. On PostgreSQL
        the rows are locked with SKIP LOCKED: two instances claiming at once never take the
        same plan. (plan id, epoch) of each plan claimed."""
        param = self.database.param
        dead = list(dead_owners)
        dead_clause = (f" OR owner IN ({', '.join([param] * len(dead))})" if dead else "")
        lock = "" if is_sqlite(self.database) else " FOR UPDATE SKIP LOCKED"
        sql = (
            f"UPDATE tasks SET owner = {param}, epoch = epoch + 1, lease_until = {param}"
            " WHERE id IN (SELECT id FROM tasks WHERE status IN ('PENDING', 'RUNNING')"
            f" AND (owner IS NULL OR owner <> {param})"
            f" AND (owner IS NULL OR lease_until IS NULL OR lease_until < {param}{dead_clause})"
            f" ORDER BY id LIMIT {param}{lock}) RETURNING uuid, epoch"
        )
        cursor = self.database.execute_sql(sql, (
            owner, self.sql.ts(to_db_time(lease_until)), owner,
            self.sql.ts(to_db_time(now)), *dead, limit))
        return [(str(r[0]), int(r[1])) for r in cursor.fetchall()]

    def notify(self, sender: str, settled: Sequence[str]) -> None:
        """NOTIFY the other instances (PostgreSQL; delivered when this transaction commits):
        that events were recorded, and which plans came to rest. A payload holds at most
        100 plan ids (PostgreSQL caps one at 8000 bytes): more take more notices."""
        chunks = [list(settled[i:i + 100]) for i in range(0, len(settled), 100)] or [[]]
        for chunk in chunks:
            self.ordered.add_notice(NOTIFY_CHANNEL,
                                    json.dumps({"from": sender, "settled": chunk}))

    def release_leases(self, owner: str) -> int:
        """A stopping instance lets its running plans go: any live instance may take them
        at once instead of waiting for their leases to run out."""
        return int(self.m.Task.update(lease_until=None).where(
            (self.m.Task.owner == owner)
            & self.m.Task.status.in_([Status.PENDING.value, Status.RUNNING.value])).execute())

    def save_instance(self, instance_id: str, value: str, *, new: bool,
                      scope: str = SCOPE_INSTANCE) -> None:
        """Write an instance's liveness row (a `context` row of no plan); `scope` moves it
        (a dead instance's row leaves the live ones, so they stay few to read)."""
        context = self.m.Context
        key = f"{KEY_INSTANCE}{instance_id}"
        if not new and context.update(value=value, scope=scope).where(
                (context.key == key) & context.scope.in_([SCOPE_INSTANCE, scope])).execute():
            return
        context.insert(task_id=None, key=key, value=value, scope=scope,
                       created_at=naive_utcnow()).execute()

    def close_orphan_intents_of(self, instance_ids: Sequence[str], *, before: dt.datetime,
                                include_unowned: bool) -> list[IntentRow]:
        """Close as ERROR the intents that the given (dead) instances took in and never
        planned; with `include_unowned`, also those no instance is named on (recorded by a
        Madre from before instances). The rows closed."""
        log_ = self.m.IntentLog
        whose = log_.instance_id.in_(list(instance_ids)) if instance_ids else None
        if include_unowned:
            whose = log_.instance_id.is_null() if whose is None else (
                whose | log_.instance_id.is_null())
        if whose is None:
            return []
        where = ((log_.result_status == "received") & log_.plan_id.is_null()
                 & (log_.created_at < to_db_time(before)) & whose)
        query = log_.select(log_.intent_id, log_.session_id).where(where)
        if not is_sqlite(self.database):
            # Two survivors may bury one instance at once: the second waits for the first's
            # commit, then finds those rows closed (not `received`) and audits nothing twice.
            query = query.for_update()
        rows = [IntentRow(r.intent_id, None, "error", r.session_id) for r in query]
        if rows:
            log_.update(result_status="error",
                        notes="interrupted: Madre stopped before a plan was created",
                        processed_by_madre_at=naive_utcnow()).where(
                log_.intent_id.in_([r.intent_id for r in rows])).execute()
        return rows

    # ------------------------------------------------------------------ reads (any thread)

    def instances(self, *, scope: str = SCOPE_INSTANCE) -> list[tuple[str, str]]:
        """(instance id, liveness JSON) of the instances not buried yet (or of `scope`)."""
        context = self.m.Context
        with connection(self.database):
            return [(r.key[len(KEY_INSTANCE):], r.value) for r in
                    context.select(context.key, context.value)
                    .where(context.scope == scope).order_by(context.id)]

    def active_owners(self) -> list[tuple[str, dt.datetime | None]]:
        """Each instance that owns plans which must run, with the soonest of their leases."""
        with connection(self.database):
            rows = self.database.execute_sql(self.sql.sql("active_owners")).fetchall()
        return [(str(owner), from_db_time(lease)) for owner, lease in rows]
