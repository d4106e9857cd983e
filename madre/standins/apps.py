"""The stand-in apps: small Starlette apps that answer like each VX11 module.

Each checks `X-VX11-Token`, replays the first answer to a repeated `Idempotency-Key`, records
every request in a shared `Recorder`, and misbehaves on purpose when its `Behaviour` says so.
The Switch stand-in parses intents with a small keyword table (`standin_dsl`); the Spawner
stand-in reports the jobs it was asked for back to Madre.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import uuid
from typing import Any

import requests
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from madre.modules import BY_NAME, MODULE_NAMES
from madre.standins.behaviour import Behaviour
from madre.standins.recorder import CallbackAttempt, Received, Recorder

ALL_MODULES: tuple[str, ...] = MODULE_NAMES
CALL_PATHS: dict[str, str] = {m.name: str(m.route) for m in BY_NAME.values()}
KNOWN_TARGETS = (*ALL_MODULES, "madre", "tentaculo_link")

# --------------------------------------------------------------------------------------------- switch DSL

# First matching rule wins: (words, second set of words that must also appear or None, dsl fields).
_DSL_RULES: tuple[tuple[frozenset[str], frozenset[str] | None, dict[str, Any]], ...] = (
    (frozenset({"delete", "remove", "borra", "borrar", "elimina", "eliminar"}), None,
     {"domain": "system", "action": "delete", "confidence": 0.95}),
    (frozenset({"run", "launch", "lanza", "lanzar", "ejecuta", "ejecutar"}), frozenset({"job", "trabajo"}),
     {"domain": "spawner", "action": "run", "confidence": 0.9}),
    (frozenset({"mix", "stems", "mezcla", "mezclar"}), None,
     {"domain": "audio", "action": "mix", "confidence": 0.9}),
    (frozenset({"status", "health", "estado", "salud"}), None,
     {"domain": "system", "action": "status", "confidence": 0.9}),
)


def standin_dsl(text: str) -> dict[str, Any]:
    """The DSL the Switch stand-in returns for an intent_parse prompt (whole-word keyword table)."""
    words = re.findall(r"\w+", text.lower())
    present = set(words)
    dsl: dict[str, Any] = {"domain": "general", "action": "chat", "parameters": {}, "confidence": 0.6}
    for first, second, fields in _DSL_RULES:
        if present & first and (second is None or present & second):
            dsl = {**fields, "parameters": {}}
            break
    target = next((w for w in words if w in KNOWN_TARGETS), None)
    if target is not None:
        dsl["target"] = target
    return dsl


# --------------------------------------------------------------------------------------------- answers


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


class _DroppedResponse(Response):
    """Promise a body, send part of it, and stop: the server drops the connection mid-answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"status": "ok", "trunc', "more_body": True})


class _StandinState:
    """Per-app state: the replay cache, the pending job callbacks, and where Madre listens."""

    def __init__(self, module: str, madre_url: str | None) -> None:
        self.module = module
        self.madre_url = madre_url  # may be set after start: Madre's port is often known only later
        self.replies: dict[str, tuple[int, dict[str, Any]]] = {}
        self.replay_lock = threading.Lock()
        self.lock = threading.Lock()  # guards timers
        self.timers: set[threading.Timer] = set()

    def forget(self) -> None:
        with self.replay_lock:
            self.replies.clear()

    def cancel_timers(self) -> None:
        with self.lock:
            timers, self.timers = self.timers, set()
        for timer in timers:
            timer.cancel()


def build_standin_app(
    module: str, *, token: str, recorder: Recorder, behaviour: Behaviour, madre_url: str | None = None
) -> Starlette:
    """A Starlette app answering like VX11 module `module`; `app.state.standin` holds its state."""
    if module not in CALL_PATHS:
        raise ValueError(f"unknown module {module!r}; use one of {', '.join(ALL_MODULES)}")
    state = _StandinState(module, madre_url)
    call_path = CALL_PATHS[module]

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if module == "switch":
            metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            if metadata.get("purpose") == "intent_parse":
                return 200, {"status": "ok", "dsl": standin_dsl(body["prompt"])}
            return 200, {"status": "ok", "provider": "standin", "reply": f"[standin] {body['prompt']}",
                         "model": "standin-echo"}
        if module == "hermes":
            return 200, {"status": "ok", "module": "hermes", "echo": body}
        if module == "hormiguero":
            return 200, {"status": "ok", "module": "hormiguero", "task_id": str(uuid.uuid4())}
        if module == "manifestator":
            return 200, {"status": "ok", "module": "manifestator", "drift": []}
        if module == "shub":
            return 200, {"status": "ok", "module": "shub", "task": body.get("task"), "params": body.get("params")}
        spawn_uuid = str(uuid.uuid4())
        daughter_task_id = body.get("daughter_task_id")
        if daughter_task_id is not None:
            schedule_callback(daughter_task_id, spawn_uuid)
        return 200, {"status": "accepted", "spawn_uuid": spawn_uuid, "daughter_task_id": daughter_task_id}

    def schedule_callback(daughter_task_id: Any, spawn_uuid: str) -> None:
        if state.madre_url is None:
            return
        url = state.madre_url.rstrip("/") + "/madre/callback/spawn"
        if behaviour.spawn_outcome == "ok":
            payload = {"daughter_task_id": daughter_task_id, "status": "ok",
                       "result": {"spawn_uuid": spawn_uuid, "exit_code": 0, "stdout": "standin job done"}}
        else:
            payload = {"daughter_task_id": daughter_task_id, "status": "error", "error": "standin job failed",
                       "result": {"spawn_uuid": spawn_uuid, "exit_code": 1}}

        def post() -> None:
            with state.lock:
                state.timers.discard(timer)
            status_code, error = None, None
            try:
                resp = requests.post(url, json=payload, timeout=5,
                                     headers={"X-VX11-Token": token, "Idempotency-Key": spawn_uuid})
                status_code = resp.status_code
                resp.close()
            except Exception as exc:  # swallowed: a job notification never crashes the stand-in
                error = f"{type(exc).__name__}: {exc}"
            recorder.record_callback(CallbackAttempt(module, url, payload, status_code, error, time.monotonic()))

        timer = threading.Timer(behaviour.complete_after, post)
        timer.daemon = True
        with state.lock:
            state.timers.add(timer)
        timer.start()

    async def misbehave(mode: str, release: threading.Event) -> Response | None:
        """The answer `mode` forces, or None to go on with the normal answer (after any wait)."""
        if mode == "hang":
            await run_in_threadpool(release.wait, behaviour.hang_max)
        elif mode == "slow":
            await run_in_threadpool(release.wait, behaviour.delay)
        elif mode == "fail":
            return _error(500, "standin_failure", f"the {module} stand-in was told to fail")
        elif mode == "unauthorized":
            return JSONResponse({"detail": "auth_required"}, status_code=401)
        elif mode in ("busy", "unavailable"):
            status, code = (429, "too_many_requests") if mode == "busy" else (503, "unavailable")
            wait = behaviour.retry_after
            headers = {"Retry-After": str(int(wait))} if wait is not None else None
            return JSONResponse({"error": code, "detail": f"the {module} stand-in is {mode}"},
                                status_code=status, headers=headers)
        elif mode == "not_implemented":
            return _error(501, "not_implemented", f"the {module} stand-in does not implement this")
        elif mode == "html":
            return Response("<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", media_type="text/html")
        elif mode == "garbage":
            return Response('{"status": "ok", "reply": [1, 2,,', media_type="application/json")
        elif mode == "close":
            return _DroppedResponse()
        return None

    async def receive_and_record(request: Request) -> tuple[Any, bool, threading.Event]:
        raw = await request.body()
        try:
            body, valid = (json.loads(raw), True) if raw else (None, True)
        except ValueError:
            body, valid = None, False
        release = behaviour.release_event()  # taken before recording: see Behaviour.release_event
        recorder.record(Received(module, request.method, request.url.path, dict(request.headers.items()),
                                 body, time.monotonic()))
        return body, valid, release

    async def health(request: Request) -> Response:
        _, _, release = await receive_and_record(request)
        mode = behaviour.mode
        forced = await misbehave("ok" if mode == "unauthorized" else mode, release)
        return forced or JSONResponse({"module": module, "status": "ok"})

    async def call(request: Request) -> Response:
        body, valid, release = await receive_and_record(request)
        sent = request.headers.get("x-vx11-token", "")
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return JSONResponse({"detail": "auth_required"}, status_code=401)
        forced = await misbehave(behaviour.next_mode(), release)
        if forced is not None:
            return forced
        if not valid or not isinstance(body, dict):
            return _error(422, "invalid_body", "send a JSON object")
        if module == "switch" and not isinstance(body.get("prompt"), str):
            return _error(422, "invalid_body", "'prompt' (a string) is required")
        key = request.headers.get("idempotency-key")
        with state.replay_lock:  # one computation per key, even for concurrent duplicates
            replayed = bool(key) and key in state.replies
            if replayed:
                status, content = state.replies[key]
            else:
                status, content = answer(body)
                if key:
                    state.replies[key] = (status, content)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(content, status_code=status, headers=headers)

    async def other(request: Request) -> Response:
        await receive_and_record(request)
        if request.url.path in ("/health", call_path):
            return _error(405, "method_not_allowed", f"{request.method} is not served on {request.url.path}")
        return _error(404, "not_found", f"the {module} stand-in serves GET /health and POST {call_path}")

    app = Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route(call_path, call, methods=["POST"]),
        Route("/{path:path}", other, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    ])
    app.state.standin = state
    return app


