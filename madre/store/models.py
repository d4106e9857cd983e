"""The five tables Madre writes, with the original column names plus what we need.

Models are built per database by `build_models(database)`, so nothing is bound at import
time and two Madre runtimes in one process (tests) never share a binding.

- intents_log   one row per intent, written before the answer, closed with result_status;
                an Idempotency-Key's claim and first answer
- tasks         one row per plan (uuid = plan_id), canonical UPPERCASE status, the plan JSON
- context       key/value rows per plan: intent id, mode (per session), confirmation hash/expiry
- madre_actions the append-only audit trail
- daughter_tasks job requests for the Spawner (INSERT only)
"""

from __future__ import annotations

import dataclasses

import peewee

from madre.model import utcnow


def naive_utcnow():
    """UTC without tzinfo: both backends store naive timestamps; the repository adds UTC back."""
    return utcnow().replace(tzinfo=None)

TABLE_NAMES = ("intents_log", "tasks", "context", "madre_actions", "daughter_tasks")


@dataclasses.dataclass(frozen=True)
class Models:
    IntentLog: type[peewee.Model]
    Task: type[peewee.Model]
    Context: type[peewee.Model]
    MadreAction: type[peewee.Model]
    DaughterTask: type[peewee.Model]

    def all(self) -> list[type[peewee.Model]]:
        return [self.IntentLog, self.Task, self.Context, self.MadreAction, self.DaughterTask]


def build_models(database: peewee.Database) -> Models:  # noqa: PLR0915 - one table each
    class Base(peewee.Model):
        class Meta:
            database = None  # set below, per runtime
            legacy_table_names = False

    class IntentLog(Base):
        id = peewee.AutoField()
        source = peewee.CharField(max_length=64)
        payload_json = peewee.TextField()
        created_at = peewee.DateTimeField(default=naive_utcnow)
        processed_by_madre_at = peewee.DateTimeField(null=True)
        result_status = peewee.CharField(max_length=32, default="planned")
        notes = peewee.TextField(null=True)
        # ours
        intent_id = peewee.CharField(max_length=128, unique=True)
        session_id = peewee.CharField(max_length=128, null=True)
        plan_id = peewee.CharField(max_length=36, null=True)
        # Idempotent intake: the SHA-256 of (principal, Idempotency-Key) claims the key, the
        # SHA-256 of the request tells a retry from a reuse, the first answer is replayed.
        idempotency_key = peewee.CharField(max_length=64, null=True, unique=True)
        request_hash = peewee.CharField(max_length=64, null=True)
        answer_json = peewee.TextField(null=True)
        instance_id = peewee.CharField(max_length=64, null=True)  # the instance that took it in

        class Meta:
            table_name = "intents_log"

    class Task(Base):
        id = peewee.AutoField()
        uuid = peewee.CharField(max_length=36, unique=True)
        name = peewee.CharField(max_length=255)
        module = peewee.CharField(max_length=50)
        action = peewee.CharField(max_length=100)
        status = peewee.CharField(max_length=20, default="PENDING")
        created_at = peewee.DateTimeField(default=naive_utcnow)
        updated_at = peewee.DateTimeField(default=naive_utcnow)
        result = peewee.TextField(null=True)
        error = peewee.TextField(null=True)
        # ours
        intent_id = peewee.CharField(max_length=128, null=True)
        session_id = peewee.CharField(max_length=128, null=True, index=True)
        source = peewee.CharField(max_length=64, null=True)
        mode = peewee.CharField(max_length=20, null=True)
        risk = peewee.CharField(max_length=8, null=True)
        wait_reason = peewee.CharField(max_length=32, null=True)
        plan_json = peewee.TextField(null=True)
        version = peewee.IntegerField(default=0)
        deadline = peewee.DateTimeField(null=True)  # a waiting confirmation's expiry
        # Several instances: the one that runs the plan, until when, and how many owners it
        # has had (a write from an older epoch changes nothing: fencing).
        owner = peewee.CharField(max_length=64, null=True)
        lease_until = peewee.DateTimeField(null=True)
        epoch = peewee.IntegerField(default=0)

        class Meta:
            table_name = "tasks"
            indexes = ((("status", "id"), False), (("status", "deadline"), False),
                       (("owner", "status"), False))

    class Context(Base):
        id = peewee.AutoField()
        # NULL for rows that belong to no plan: an instance's liveness, the schema version.
        # No index of its own (a foreign key gets one by default): the (task_id, key) index
        # below serves every lookup by plan, and each plan writes 2-5 of these rows, so a
        # second index over the same random uuids is one more B-tree insert per row for nothing.
        task_id = peewee.ForeignKeyField(
            Task, field=Task.uuid, column_name="task_id", backref="context_rows", null=True,
            index=False,
        )
        key = peewee.CharField(max_length=255)
        value = peewee.TextField()
        scope = peewee.CharField(max_length=50, default="global")
        created_at = peewee.DateTimeField(default=naive_utcnow)

        class Meta:
            table_name = "context"
            indexes = ((("task_id", "key"), False), (("scope", "key"), False))

    class MadreAction(Base):
        id = peewee.AutoField()
        module = peewee.CharField(max_length=64)
        action = peewee.CharField(max_length=64)
        reason = peewee.CharField(max_length=255, default="")
        created_at = peewee.DateTimeField(default=naive_utcnow)
        # ours
        plan_id = peewee.CharField(max_length=36, null=True, index=True)
        intent_id = peewee.CharField(max_length=128, null=True)
        session_id = peewee.CharField(max_length=128, null=True)
        actor = peewee.CharField(max_length=64, null=True)
        detail_json = peewee.TextField(null=True)
        plan_status = peewee.CharField(max_length=20, null=True)  # the plan's status after it

        class Meta:
            table_name = "madre_actions"

    class DaughterTask(Base):
        id = peewee.AutoField()
        intent_id = peewee.CharField(max_length=128, null=True)
        source = peewee.CharField(max_length=64)
        priority = peewee.IntegerField(default=3)
        status = peewee.CharField(max_length=32, default="pending")
        task_type = peewee.CharField(max_length=50)
        description = peewee.TextField(null=True)
        created_at = peewee.DateTimeField(default=naive_utcnow)
        updated_at = peewee.DateTimeField(default=naive_utcnow)
        finished_at = peewee.DateTimeField(null=True)
        max_retries = peewee.IntegerField(default=2)
        current_retry = peewee.IntegerField(default=0)
        metadata_json = peewee.TextField(null=True)
        plan_json = peewee.TextField(null=True)
        # ours
        plan_id = peewee.CharField(max_length=36, null=True, index=True)
        step_id = peewee.CharField(max_length=36, null=True)

        class Meta:
            table_name = "daughter_tasks"

    models = Models(IntentLog, Task, Context, MadreAction, DaughterTask)
    database.bind(models.all(), bind_refs=False, bind_backrefs=False)
    return models
