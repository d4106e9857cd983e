"""Intake: every way a request comes in (chat, control, structured intent) goes down one path.

    understand ──► classify ──► plan ──► persist ──► run
    (parse text,   (the one     (rules)   (the intent   (spawn its actor;
     or take the    policy)               row with the  chat waits for its
     structured                           plan, or the  outcome)
     order)                               denial)

The adapters (`chat`, `control`, `intent`) only turn their request into a `Submission` and
the outcome into their answer. Every accepted intent is durable before it is acknowledged:
the intents_log row is written in the same transaction as its plan (or its denial).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from madre import answers
from madre.actors.store_client import StoreClient
from madre.actors.supervisor import SupervisorClient
from madre.contracts.intake import (
    ChatRequest,
    ChatResponse,
    ControlRequest,
    ControlResponse,
    ControlStatus,
    IntentRequest,
    IntentResponse,
)
from madre.errors import DuplicateIntent, InvalidToken
from madre.idempotency import Answered, IdempotencyKey, Once, key_for
from madre.model import SETTLED_STATUSES, DSL, Intent, Mode, Plan, Provider, Step, new_id
from madre.principals import OWNER, Principal, Role
from madre.records import AuditRow, Change, Confirmation, IntentClose, IntentRecord
from madre.parsing import SwitchParser
from madre.rules import lifecycle, policy, tokens
from madre.rules.approvals import ApprovalRules, summary
from madre.rules.parsing import mode_for
from madre.rules.planning import build_plan
from madre.rules.tables import DEFAULT_TABLES, PolicyTables
from madre.rules.tokens import IssuedToken, hash_token
from madre.store.repository import Repository, stamp
from madre.watch import Watch, Watchers

RETAKABLE = ("received", "error")  # an intent row in these states made no plan: retry it


@dataclasses.dataclass(frozen=True)
class Submission:
    """A request as intake sees it, whichever way it came in."""

    kind: str  # chat | control | intent: the audit's `request`
    source: str
    principal: Principal  # who asks: the audit's actor, the plan's submitted_by
    intent_id: str
    session_id: str
    record: IntentRecord | None  # written with the plan; None when already written
    text: str | None = None  # to parse ...
    structured: DSL | None = None  # ... or the order as given
    mode: Mode | None = None  # a structured order's mode (parsed text finds its own)
    session_known: bool = True  # False: a session minted now has no mode to look up
    extra_params: dict[str, Any] | None = None  # merged into what parsing found
    correlation_id: str | None = None
    dry_run: bool = False
    request_id: str | None = None  # the HTTP request's X-Request-ID, carried by the plan
    watch: bool = False  # watch the plan it starts (chat waits for its outcome)


@dataclasses.dataclass(frozen=True)
class Accepted:
    """What intake made of a submission: the classified intent, and its plan as persisted
    (None when it was denied), the token issued for it and the decision's audit row id."""

    intent: Intent
    plan: Plan | None
    issued: IssuedToken | None = None
    action_id: int | None = None
    watch: Watch | None = None  # the started plan's watch, when the submission asked one


class Intake:
    """Parses, classifies, plans, persists and starts what comes in."""

    def __init__(self, *, repo: Repository, store: StoreClient, parser: SwitchParser,
                 tables: PolicyTables = DEFAULT_TABLES, confirm_ttl_seconds: float,
                 supervisor: SupervisorClient, watchers: Watchers, clock: Callable[[], Any],
                 chat_wait: float, confirm: Callable[..., Any],
                 rules: ApprovalRules | None = None, instance_id: str | None = None) -> None:
        self._me = instance_id
        self._repo = repo
        self._store = store
        self._parser = parser
        self._tables = tables  # the built-in risk tables, or those of MADRE_POLICY_FILE
        self._ttl = confirm_ttl_seconds
        self._supervisor = supervisor
        self._watchers = watchers
        self._now = clock
        self._chat_wait = chat_wait
        self._confirm = confirm
        self._rules = rules or ApprovalRules()
        self._once = Once(repo, store)

    # ------------------------------------------------------------------ the adapters

    def chat(self, request: ChatRequest, *, principal: Principal = OWNER,
             wait: float | None = None, key: IdempotencyKey | None = None,
             request_id: str | None = None) -> Answered[ChatResponse]:
        """Understand a message, decide, plan, run; answer with the plan's outcome.

        Waits up to `wait` (default MADRE_CHAT_WAIT_SECONDS) for the plan to settle; a plan
        still going after that is answered RUNNING and goes on. With `key`, a retry gets
        the first answer again (`madre.idempotency`).
        """
        session_id = request.session_id or new_id()
        intent_id = new_id()
        record = IntentRecord(intent_id, "operator", {
            "message": request.message, "session_id": session_id,
            "context": request.context or {}, "dry_run": request.dry_run,
        }, session_id)

        def answer(unwritten: IntentRecord | None) -> ChatResponse:
            accepted = self._accept(Submission(
                kind="chat", source="operator", principal=principal, intent_id=intent_id,
                session_id=session_id, record=unwritten, text=request.message,
                session_known=request.session_id is not None, dry_run=request.dry_run,
                request_id=request_id, watch=True))
            intent, plan = accepted.intent, accepted.plan
            if plan is None:
                return answers.chat_answer(intent, None, waited=0)
            if request.dry_run:
                return answers.chat_answer(intent, plan, waited=0, persisted=False)
            budget = self._chat_wait if wait is None else wait
            settled = plan if accepted.watch is None else self._settled(
                plan, accepted.watch, wait=budget)
            return answers.chat_answer(intent, settled, waited=budget, issued=accepted.issued,
                                       plan_id=plan.plan_id)

        return self._once.run(key, record, ChatResponse, answer)

    def control(self, request: ControlRequest, *, principal: Principal = OWNER,
                key: IdempotencyKey | None = None, request_id: str | None = None
                ) -> Answered[ControlResponse]:
        """A structured order for one module; MED/HIGH wait for confirmation, some are denied.

        With `confirm_token` (and optionally `plan_id`) it confirms the plan the token was
        issued for, as the original clients do. With `key`, a retry gets the first answer.
        """
        target, action = request.target.lower(), request.action.lower()
        intent_id = new_id()
        session_id = request.session_id or new_id()
        record = IntentRecord(intent_id, "control", {
            "target": request.target, "action": request.action, "params": request.params or {},
        }, session_id)
        if request.confirm_token:
            if key is None:  # a confirmation is no new intent: nothing to record
                return Answered(self._confirm_by_token(request, principal=principal))
            return self._once.run(key, record, ControlResponse, lambda _: self._keyed_confirm(
                request, principal=principal, intent_id=intent_id))
        dsl = DSL(domain=target, action=action, target=target,
                  parameters=request.params or {}, confidence=1.0,
                  original_text=f"{request.action} {request.target}")

        def answer(unwritten: IntentRecord | None) -> ControlResponse:
            accepted = self._accept(Submission(
                kind="control", source="control", principal=principal, intent_id=intent_id,
                session_id=session_id, record=unwritten, structured=dsl, mode=Mode.MADRE,
                request_id=request_id))
            return answers.control_answer(accepted.intent, accepted.plan,
                                          issued=accepted.issued, action_id=accepted.action_id)

        return self._once.run(key, record, ControlResponse, answer)

    def intent(self, request: IntentRequest, *, principal: Principal = OWNER,
               key: IdempotencyKey | None = None, request_id: str | None = None
               ) -> Answered[IntentResponse]:
        """Structured intake (Operator, Hormiguero, webhooks, CLI). Does not wait for the plan.

        A `correlation_id` becomes the intent id, so a caller that retries gets the truth:
        the first answer back (`duplicate: true`) when the first attempt was accepted (its
        plan, or its denial, is recorded), and a fresh attempt when it was not (it was
        refused, or cut short by a crash: its row is taken over). The intent row is written
        with its plan in one transaction, so no row ever promises a plan that is not there.
        So does `key`, an Idempotency-Key (or a webhook's id).
        """
        intent_id = request.correlation_id or new_id()
        earlier = self._repo.find_intent(intent_id) if request.correlation_id else None
        if earlier is not None and (earlier.plan_id or earlier.result_status not in RETAKABLE):
            return Answered(self._duplicate(intent_id))
        session_id = request.session_id or new_id()
        payload = request.model_dump(exclude_none=True, exclude={"payload", "type"})
        record = IntentRecord(intent_id, request.source, payload, session_id,
                              retake=earlier is not None)

        def answer(unwritten: IntentRecord | None) -> IntentResponse:
            # Written with its plan (or its denial), in one transaction: no row ever promises
            # a plan that is not there. (With a key, the claim wrote it already.)
            return self._intent(request, principal, intent_id, session_id, request_id,
                                record=unwritten)

        try:
            return self._once.run(key, record, IntentResponse, answer)
        except DuplicateIntent:
            return Answered(self._duplicate(intent_id))

    def webhook(self, source: str, message_id: str, request: IntentRequest
                ) -> Answered[IntentResponse]:
        """A signed webhook from `source` (its signature checked already): an intent of that
        source, once per message id. A repeated message answers the first answer with
        `duplicate: true` and starts nothing. Each is audited (`webhook_received`,
        `webhook_duplicate`) with the source and the message id."""
        principal = Principal(f"webhook:{source}", frozenset({Role.SUBMITTER}))
        request = request.model_copy(update={"source": source})
        key = key_for(principal.name, message_id, route=f"webhook/{source}",
                      body=request.model_dump(mode="json"))
        answered = self.intent(request, principal=principal, key=key)
        answer = answered.answer
        if answered.replayed:
            answer = answer.model_copy(update={"duplicate": True})
        self._store.append_audit([AuditRow(
            action="webhook_duplicate" if answered.replayed else "webhook_received",
            module="madre", plan_id=answer.plan_id, intent_id=answer.intent_id,
            actor=principal.name, reason=f"webhook {message_id}"[:255],
            detail={"source": source, "webhook_id": message_id})])
        return Answered(answer, answered.replayed)

    def _intent(self, request: IntentRequest, principal: Principal, intent_id: str,
                session_id: str, request_id: str | None = None,
                record: IntentRecord | None = None) -> IntentResponse:
        submission = Submission(kind="intent", source=request.source, principal=principal,
                                intent_id=intent_id, session_id=session_id, record=record,
                                correlation_id=request.correlation_id, request_id=request_id)
        if request.action is not None:
            target = (request.target or request.domain or "madre").lower()
            dsl = DSL(domain=(request.domain or target).lower(), action=request.action.lower(),
                      target=request.target.lower() if request.target else None,
                      parameters=request.params or {}, confidence=1.0,
                      original_text=request.text or f"{request.action} {target}")
            mode = Mode.AUDIO_ENGINEER if dsl.domain == "audio" else Mode.MADRE
            submission = dataclasses.replace(submission, structured=dsl, mode=mode)
        else:
            submission = dataclasses.replace(submission, text=request.text,
                                             extra_params=request.params)
        try:
            accepted = self._accept(submission)
        except DuplicateIntent:  # another attempt with this correlation id won meanwhile
            return self._duplicate(intent_id)
        return answers.intent_answer(accepted.intent, accepted.plan, issued=accepted.issued)

    # ------------------------------------------------------------------ the one path

    def _accept(self, sub: Submission) -> Accepted:
        intent = self._understand(sub)
        if intent.decision.denied:
            return Accepted(intent, None, action_id=self._deny(intent, sub))
        plan = build_plan(intent)
        plan.request_id = sub.request_id
        if sub.dry_run:
            self._store.close_intent(sub.record, IntentClose(intent.intent_id, "dry_run",
                                                              "planned only (dry_run)"))
            return Accepted(intent, plan)
        return self._persist(intent, plan, sub.record, watch_it=sub.watch)

    def _understand(self, sub: Submission) -> Intent:
        """Parse (or take) what is asked and classify it: the intent, ready to plan."""
        if sub.structured is not None:
            dsl, provider, warnings = sub.structured, Provider.STRUCTURED, []
            mode = sub.mode or Mode.MADRE
        else:
            assert sub.text is not None
            # A session minted just now has no history to read.
            session_mode = (self._repo.session_mode(sub.session_id) if sub.session_known
                            else None) or Mode.MADRE
            parsed = self._parser.parse(sub.text, session_mode, session_id=sub.session_id,
                                         intent_id=sub.intent_id)
            dsl, provider, warnings = parsed.dsl, parsed.provider, parsed.warnings
            if sub.extra_params:
                dsl.parameters.update(sub.extra_params)
            mode = mode_for(dsl, session_mode)
        decision = policy.classify_dsl(dsl, tables=self._tables)
        return Intent(intent_id=sub.intent_id, source=sub.source, session_id=sub.session_id,
                      mode=mode, dsl=dsl, provider=provider, decision=decision,
                      targets=[dsl.target] if dsl.target else [], warnings=warnings,
                      correlation_id=sub.correlation_id, submitted_by=sub.principal.name)

    def _persist(self, intent: Intent, plan: Plan, record: IntentRecord | None, *,
                 watch_it: bool = False) -> Accepted:
        """Write the new plan (WAITING behind its gate when it needs a human) with the
        decision, and the intent row when it is not written yet; start it when it runs at
        once (`watch_it`: with a watch of it, registered before it could settle)."""
        decision = intent.decision
        decided = lifecycle.note(
            plan, f"decision:{decision.risk}", reason=decision.reason,
            module=intent.dsl.target or "madre", actor=intent.submitted_by or intent.source,
            detail={"domain": intent.dsl.domain, "action": intent.dsl.action,
                    "provider": intent.provider.value, "source": intent.source})
        change = Change()
        issued: IssuedToken | None = None
        confirmation = None
        if decision.requires_confirmation:
            # What will run, as the human who approves it is shown it.
            plan.plan_digest = self._rules.digest(plan)
            plan.approvals_needed = self._rules.needed(plan.risk)
            issued = tokens.issue_token(now=self._now(), ttl_seconds=self._ttl)
            confirmation = Confirmation(issued.token_hash, issued.expires_at, plan.plan_digest)
            announce = {"plan_digest": plan.plan_digest, "summary": summary(plan),
                        "risk": plan.risk.value, "submitted_by": plan.submitted_by,
                        "approvals_needed": plan.approvals_needed}
            change = change.then(lifecycle.gate(plan, expires_at=issued.expires_at,
                                                now=self._now(), announce=announce))
        change = change.then(Change(audit=(lifecycle.note(
            plan, "plan_created", reason=f"{len(plan.steps)} steps", actor="planner"),)))
        if not plan.active:  # it waits for a human: it rests in the database, no actor
            action_id = self._store.create_plan(plan, change, confirmation=confirmation,
                                                intent=record, decision=decided)
            return Accepted(intent, plan, issued, action_id)
        # This instance runs it: it owns it from the first write, which also starts it (and
        # its first call's write-ahead). Its actor starts while that write commits, and
        # makes its first call only once it has: nothing runs that is not recorded.
        plan.owner, plan.epoch = self._me, 1
        first: Step | None = None
        if self._supervisor.has_room():  # it starts now, so it is written started
            created_rows = dataclasses.replace(change, audit=stamp(change.audit, plan.status))
            begun, first = lifecycle.begin(plan, now=self._now())
            change = created_rows.then(begun)
        created = self._store.create_plan_later(plan, change,
                                                confirmation=confirmation, intent=record,
                                                decision=decided)
        watch = self._watchers.watch(plan.plan_id) if watch_it else None
        self._watchers.expect(plan.plan_id)
        self._supervisor.spawn(plan.detached(), created=created,
                               written_ahead=first.step_id if first is not None else None)
        try:
            action_id = self._store.wait(created)
        except BaseException:
            if watch is not None:
                self._watchers.forget(watch)
            raise
        return Accepted(intent, plan, issued, action_id, watch=watch)

    def _deny(self, intent: Intent, sub: Submission) -> int:
        """Record a refusal: no plan, the intent closed as denied, an audit row saying why."""
        decision = intent.decision
        row = AuditRow(action="denied", reason=decision.reason[:255],
                       module=intent.dsl.target or "madre", intent_id=intent.intent_id,
                       session_id=intent.session_id, actor=sub.principal.name,
                       detail={"request": sub.kind, "action": intent.dsl.action,
                               "source": intent.source, "provider": intent.provider.value})
        return self._store.record_denial(
            sub.record, IntentClose(intent.intent_id, "denied", decision.reason[:500]), row)

    def _settled(self, plan: Plan, watch: Watch, *, wait: float) -> Plan | None:
        """Wait up to `wait` seconds for the started plan to settle (None: it has not).
        When the wait runs out the stored plan has the last word: another instance may have
        taken it over and finished it."""
        with watch:
            settled = watch.wait(wait)
        if settled is None and wait > 0:
            stored = self._repo.readable_plan(plan.plan_id)
            if stored is not None and stored.status in SETTLED_STATUSES:
                return stored
        return settled

    # ------------------------------------------------------------------ helpers

    def _confirm_by_token(self, request: ControlRequest, *, principal: Principal
                          ) -> ControlResponse:
        """`control` with a `confirm_token`: confirm the plan it was issued for."""
        decision = policy.classify_dsl(DSL(
            domain=request.target.lower(), action=request.action.lower(),
            target=request.target.lower()), tables=self._tables)
        token = request.confirm_token or ""
        plan_id = request.plan_id or self._repo.find_plan_by_token_hash(hash_token(token))
        if plan_id is None:
            raise InvalidToken("no plan waits for this confirmation token")
        confirmed = self._confirm(plan_id, token, principal=principal, wait=0)
        plan = self._repo.readable_plan(plan_id)
        return ControlResponse(status=ControlStatus.ACCEPTED, plan_id=plan_id, risk=decision.risk,
                               intent_id=plan.intent_id if plan else None,
                               reason="confirmed", plan_status=confirmed.plan_status)

    def _keyed_confirm(self, request: ControlRequest, *, principal: Principal,
                       intent_id: str) -> ControlResponse:
        """A keyed confirmation through control: its claimed intents_log row ends with it."""
        try:
            answer = self._confirm_by_token(request, principal=principal)
        except Exception as exc:
            self._store.close_intent(None, IntentClose(intent_id, "error", str(exc)[:500]))
            raise
        self._store.close_intent(None, IntentClose(
            intent_id, "confirmation", f"confirmed plan {answer.plan_id}"))
        return answer

    def _duplicate(self, intent_id: str) -> IntentResponse:
        row = self._repo.find_intent(intent_id)
        plan = self._repo.readable_plan(row.plan_id) if row and row.plan_id else None
        denied = row is not None and row.result_status == "denied"
        return answers.duplicate_intent_answer(intent_id, plan, denied=denied)

