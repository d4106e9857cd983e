"""The typed Python client of a Madre server: one method per endpoint, the contracts back.

    from madre.client import MadreClient

    with MadreClient("http://127.0.0.1:8001", token="vx11-local-token") as madre:
        answer = madre.chat("mix these 3 stems", session_id="sess-123")   # a ChatResponse
        if answer.confirm_token:
            madre.confirm(answer.plan_id, answer.confirm_token)
        plan = madre.get_plan(answer.plan_id)                             # a PlanDetail

Every method returns the answer as the pydantic model of `madre.contracts` the server
answers with (ChatResponse, PlanDetail, HealthResponse, ...); `request()` gives any answer's
JSON as it came. Anything else raises ClientError with a message a person can act on and
the exit code the `madre` CLI uses: REFUSED (1) when the server answered an error envelope
(its `status`, `code` and `detail` are on the error), UNREACHABLE (3) when there is no
server to answer (connection refused, DNS, timeout), USAGE (2) when the URL itself is bad.
The `madre` command is built on this client.
"""

from __future__ import annotations

import codecs
import dataclasses
import json as jsonlib
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from madre.contracts.commands import (
    ApproveResponse,
    CancelResponse,
    ConfirmResponse,
    JobReportResponse,
    RejectResponse,
)
from madre.contracts.envelope import TOKEN_HEADER
from madre.contracts.events import Event
from madre.contracts.health import HealthResponse, InstanceList
from madre.contracts.intake import ChatResponse, ControlResponse, IntentResponse
from madre.contracts.plans import PendingList, PlanDetail, PlanList, PlanSummary
from madre.settings import DEFAULT_TOKEN
from madre.version import __version__

DEFAULT_URL = "http://127.0.0.1:8001"
DEFAULT_TIMEOUT = 30.0  # seconds; chat and confirm wait for their plan (MADRE_CHAT_WAIT_SECONDS)
HEADER = TOKEN_HEADER

OK = 0
REFUSED = 1
USAGE = 2
UNREACHABLE = 3

M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """A request that did not succeed. `exit_code` is what the CLI exits with; for a refusal,
    `status`, `code`, `detail` and `body` carry the server's answer."""

    def __init__(self, message: str, exit_code: int, *, status: int | None = None,
                 code: str | None = None, detail: str | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body


def _refusal(resp: requests.Response, url: str) -> ClientError:
    """The error envelope of `resp` (a non-2xx answer) as a ClientError."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body["error"]
        detail = str(body.get("detail") or "")
        message = f"{code}: {detail}" if detail else code
        for err in body.get("errors") or []:
            if isinstance(err, dict):
                where = ".".join(str(p) for p in err.get("loc") or []) or "body"
                message += f"\n  {where}: {err.get('msg', '')}"
        if resp.status_code in (401, 403) and code in ("auth_required", "forbidden"):
            message += "\n  (the token comes from --token or VX11_TOKEN)"
        return ClientError(message, REFUSED, status=resp.status_code, code=code,
                           detail=detail, body=body)
    snippet = " ".join(resp.text.split())[:200]
    return ClientError(
        f"{url} answered HTTP {resp.status_code} without Madre's error envelope"
        + (f": {snippet}" if snippet else "") + " (is MADRE_URL / --url a Madre server?)",
        REFUSED, status=resp.status_code, body=snippet)


class MadreClient:
    """The endpoints of one Madre server, over one requests session (keep-alive); a context
    manager. `token` is sent as X-VX11-Token; `timeout` bounds every call (chat and confirm
    wait for their plan up to the server's MADRE_CHAT_WAIT_SECONDS)."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = DEFAULT_TOKEN,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = f"madre-client/{__version__}"
        if token:
            self.session.headers[HEADER] = token

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> MadreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              **kwargs: Any) -> requests.Response:
        """`method path`, with transport failures turned into ClientError (USAGE for a bad
        URL, UNREACHABLE for no answer) and a non-2xx answer into a refusal."""
        url = self.url + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs.setdefault("timeout", self.timeout)
        try:
            resp = self.session.request(method, url, params=query or None, **kwargs)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise ClientError(f"{self.url} is not a URL Madre can be reached at ({exc}); "
                              "give one like http://127.0.0.1:8001", USAGE) from None
        except requests.exceptions.Timeout:
            raise ClientError(f"cannot reach Madre at {self.url}: no answer within "
                              f"{self.timeout:g} s (--timeout)", UNREACHABLE) from None
        except requests.exceptions.ConnectionError as exc:
            raise ClientError(f"cannot reach Madre at {self.url}: {_reason(exc)}",
                              UNREACHABLE) from None
        except requests.exceptions.RequestException as exc:
            raise ClientError(f"cannot reach Madre at {self.url}: {exc}", UNREACHABLE) from None
        if not 200 <= resp.status_code < 300:
            try:
                raise _refusal(resp, self.url)
            finally:
                resp.close()
        return resp

    def request(self, method: str, path: str, *, json: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None) -> Any:
        """`method path` with an optional JSON body and query; the 2xx answer's JSON body."""
        resp = self._send(method, path, json=json, params=params)
        try:
            return resp.json()
        except ValueError:
            raise ClientError(f"{self.url} answered {method} {path} with something that is "
                              "not JSON (is MADRE_URL / --url a Madre server?)",
                              REFUSED, status=resp.status_code) from None

    def _answer(self, model: type[M], method: str, path: str, *,
                json: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> M:
        """`method path`, its answer read as `model`; ClientError (REFUSED) when the server
        answers something else (another version of Madre, or not Madre at all)."""
        data = self.request(method, path, json=json, params=params)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ClientError(f"{self.url} answered {method} {path} with JSON that is not a "
                              f"{model.__name__} ({exc.error_count()} problems; is it a Madre "
                              f"of another version?)", REFUSED, body=data) from None

    # ------------------------------------------------------------------ endpoints

    def health(self) -> HealthResponse:
        """GET /health (no token needed)."""
        return self._answer(HealthResponse, "GET", "/health")

    def instances(self) -> InstanceList:
        """GET /madre/instances: the instances alive on the server's database."""
        return self._answer(InstanceList, "GET", "/madre/instances")

    def chat(self, message: str, *, session_id: str | None = None, dry_run: bool = False,
             context: dict[str, Any] | None = None) -> ChatResponse:
        """POST /madre/chat: Madre's answer once the plan settled (or its wait ran out)."""
        body: dict[str, Any] = {"message": message, "dry_run": dry_run}
        if session_id:
            body["session_id"] = session_id
        if context is not None:
            body["context"] = context
        return self._answer(ChatResponse, "POST", "/madre/chat", json=body)

    def control(self, target: str, action: str, *, params: dict[str, Any] | None = None,
                confirm_token: str | None = None, plan_id: str | None = None,
                session_id: str | None = None) -> ControlResponse:
        """POST /madre/control: accepted, pending_confirmation (with the token) or denied."""
        body: dict[str, Any] = {"target": target, "action": action, "params": params or {}}
        for key, value in (("confirm_token", confirm_token), ("plan_id", plan_id),
                           ("session_id", session_id)):
            if value:
                body[key] = value
        return self._answer(ControlResponse, "POST", "/madre/control", json=body)

    def intent(self, *, source: str = "cli", text: str | None = None,
               action: str | None = None, target: str | None = None,
               domain: str | None = None, params: dict[str, Any] | None = None,
               session_id: str | None = None, correlation_id: str | None = None
               ) -> IntentResponse:
        """POST /madre/intent: `text` to parse, or `action` (with `target`) as given. Does
        not wait for the plan; a repeated `correlation_id` answers the first intent again."""
        fields = {"source": source, "text": text, "action": action, "target": target,
                  "domain": domain, "params": params, "session_id": session_id,
                  "correlation_id": correlation_id}
        body = {k: v for k, v in fields.items() if v is not None}
        return self._answer(IntentResponse, "POST", "/madre/intent", json=body)

    def list_plans(self, *, status: str | None = None, session_id: str | None = None,
                   limit: int | None = None, cursor: str | None = None) -> PlanList:
        """GET /madre/plans: one page, newest first (`next_cursor` is the next page's)."""
        return self._answer(PlanList, "GET", "/madre/plans", params={
            "status": status, "session_id": session_id, "limit": limit, "cursor": cursor})

    def iter_plans(self, *, status: str | None = None, session_id: str | None = None,
                   limit: int | None = None) -> Iterator[PlanSummary]:
        """Every plan matching the filters, newest first, following `next_cursor`."""
        cursor = None
        while True:
            page = self.list_plans(status=status, session_id=session_id, limit=limit,
                                   cursor=cursor)
            yield from page.plans
            cursor = page.next_cursor
            if not cursor:
                return

    def get_plan(self, plan_id: str) -> PlanDetail:
        """GET /madre/plans/{plan_id}: the intent, every step, the confirmation, the history."""
        return self._answer(PlanDetail, "GET", f"/madre/plans/{_segment(plan_id)}")

    def confirm(self, plan_id: str, confirm_token: str) -> ConfirmResponse:
        """POST /madre/plans/{plan_id}/confirm: the plan resumes; its status after the wait."""
        return self._answer(ConfirmResponse, "POST",
                            f"/madre/plans/{_segment(plan_id)}/confirm",
                            json={"confirm_token": confirm_token})

    def pending(self, *, plan_id: str | None = None) -> PendingList:
        """GET /madre/pending: the plans waiting for a human."""
        return self._answer(PendingList, "GET", "/madre/pending", params={"plan_id": plan_id})

    def approve(self, plan_id: str, plan_digest: str, *, comment: str | None = None
                ) -> ApproveResponse:
        """POST /madre/plans/{plan_id}/approve: approve exactly what `plan_digest` names."""
        body = {"plan_digest": plan_digest, **({"comment": comment} if comment else {})}
        return self._answer(ApproveResponse, "POST",
                            f"/madre/plans/{_segment(plan_id)}/approve", json=body)

    def reject(self, plan_id: str, reason: str, *, confirm_token: str | None = None
               ) -> RejectResponse:
        """POST /madre/plans/{plan_id}/reject: the plan ends ERROR, nothing of it runs."""
        body = {"reason": reason, **({"confirm_token": confirm_token} if confirm_token else {})}
        return self._answer(RejectResponse, "POST",
                            f"/madre/plans/{_segment(plan_id)}/reject", json=body)

    def cancel(self, plan_id: str, *, reason: str | None = None,
               by: str | None = None) -> CancelResponse:
        """POST /madre/plans/{plan_id}/cancel: the plan ends ERROR, `cancelled`; `by` is who
        asked, for the audit trail."""
        body = {k: v for k, v in {"reason": reason, "by": by}.items() if v is not None}
        return self._answer(CancelResponse, "POST", f"/madre/plans/{_segment(plan_id)}/cancel",
                            json=body)

    def events(self, *, plan_id: str | None = None, session_id: str | None = None,
               status: str | None = None, last_event_id: int | str | None = None,
               read_timeout: float | None = None) -> EventStream:
        """GET /madre/events: an open EventStream (close it, or use it in a `with`).

        With `last_event_id` (0 replays from the start) the server sends the events after
        it first; without, what happens from now on. `read_timeout` bounds the silence
        between two reads (the server pings every 15 s); None waits for ever. Raises
        ClientError like every other call when the stream cannot be opened.
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        resp = self._send("GET", "/madre/events", headers=headers, stream=True,
                          timeout=(self.timeout, read_timeout),
                          params={"plan_id": plan_id, "session_id": session_id,
                                  "status": status})
        return EventStream(resp, self.url)

    def spawn_callback(self, daughter_task_id: int, *, ok: bool,
                       result: dict[str, Any] | None = None,
                       error: str | None = None) -> JobReportResponse:
        """POST /madre/callback/spawn (what a Spawner sends when a job ended)."""
        body: dict[str, Any] = {"daughter_task_id": daughter_task_id,
                                "status": "ok" if ok else "error"}
        if result is not None:
            body["result"] = result
        if error is not None:
            body["error"] = error
        return self._answer(JobReportResponse, "POST", "/madre/callback/spawn", json=body)

    def daughter_report(self, daughter_id: int, *, ok: bool, status: str | None = None,
                        exit_code: int | None = None, spawn_uuid: str | None = None,
                        error: str | None = None) -> JobReportResponse:
        """POST /madre/daughter/{id}/complete or /fail (the Spawner's own report)."""
        body = {k: v for k, v in {"status": status, "exit_code": exit_code,
                                  "spawn_uuid": spawn_uuid, "error": error}.items()
                if v is not None}
        outcome = "complete" if ok else "fail"
        return self._answer(JobReportResponse, "POST",
                            f"/madre/daughter/{int(daughter_id)}/{outcome}", json=body)


@dataclasses.dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its `id` (None when the server gave none), its `event` name
    (the audit action, or `dropped`) and its `data` text (JSON for Madre's events)."""

    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return jsonlib.loads(self.data)

    def record(self) -> Event:
        """The event's data as the audit `Event` it is (not for `dropped`, which has none)."""
        return Event.model_validate_json(self.data)


class StreamLost(ClientError):
    """The event stream's connection dropped, or stayed silent past the read timeout."""


class EventStream:
    """An open `GET /madre/events`: iterate for ServerEvents, in order. Iteration ends when
    the server ends the stream (Madre stopping, a `dropped` client) and raises StreamLost
    when the connection drops."""

    def __init__(self, resp: requests.Response, url: str) -> None:
        self._resp = resp
        self._url = url

    def __iter__(self) -> Iterator[ServerEvent]:
        try:
            yield from parse_sse(self._resp.iter_content(chunk_size=None))
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                requests.exceptions.Timeout) as exc:
            raise StreamLost(f"lost the event stream of {self._url}: {_reason(exc)}",
                             UNREACHABLE) from None

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_sse(chunks: Iterator[bytes]) -> Iterator[ServerEvent]:
    """The events in a text/event-stream body, as its chunks arrive (WHATWG rules: lines end
    with CRLF, LF or CR; `:` lines are comments, such as pings; a blank line dispatches)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    fields: dict[str, Any] = {"id": None, "event": "", "data": []}

    def take(lines: list[str]) -> Iterator[ServerEvent]:
        for line in lines:
            if line == "":
                if fields["data"]:
                    yield ServerEvent(fields["id"], fields["event"] or "message",
                                      "\n".join(fields["data"]))
                fields["event"], fields["data"] = "", []
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    fields["data"].append(value)
                elif name in ("id", "event"):
                    fields[name] = value

    for chunk in chunks:
        pending += decoder.decode(chunk)
        # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
        cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
        lines = pending[:cut].replace("\r\n", "\n").replace("\r", "\n").split("\n")
        pending = lines.pop() + pending[cut:]
        yield from take(lines)
    if pending.endswith("\r"):  # the body ended: that CR ended a line after all
        yield from take([pending[:-1]])


def _segment(value: str) -> str:
    """`value` as one path segment (a plan id with a slash stays one segment)."""
    return quote(value, safe="")


def _reason(exc: requests.exceptions.ConnectionError) -> str:
    """The innermost reason of a connection failure, e.g. "Connection refused"."""
    text = str(exc)
    for marker in ("] ", "NewConnectionError("):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    text = text.rstrip("'\")").strip()
    return text or "connection failed"


__all__ = ["ClientError", "EventStream", "MadreClient", "OK", "REFUSED", "ServerEvent",
           "StreamLost", "UNREACHABLE", "USAGE", "parse_sse"]
