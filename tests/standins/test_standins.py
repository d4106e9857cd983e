"""The loopback stand-ins answer like the VX11 modules, misbehave on demand, and record what they got."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager

import pytest
import requests
from helpers import TOKEN, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from madre.standins import (
    ALL_MODULES,
    CALL_PATHS,
    Behaviour,
    LoopbackServer,
    LoopbackStartError,
    Received,
    Recorder,
    StandinCluster,
    standin_dsl,
)


@pytest.fixture
def cluster(standins: StandinCluster) -> StandinCluster:
    """The shared stand-ins of conftest's `standins` (token TOKEN), reset for this test."""
    return standins


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def headers(key: str | None = "step-1", token: str | None = TOKEN) -> dict[str, str]:
    out = {}
    if token is not None:
        out["X-VX11-Token"] = token
    if key is not None:
        out["Idempotency-Key"] = key
    return out


def call(http: requests.Session, cluster: StandinCluster, module: str, body: object = None, *,
         key: str | None = "step-1", token: str | None = TOKEN, timeout: float = 5.0) -> requests.Response:
    body = {"prompt": "hello"} if body is None else body
    return http.post(cluster.urls[module] + CALL_PATHS[module], json=body, headers=headers(key, token),
                     timeout=timeout)


# ------------------------------------------------------------------------------------------ happy paths


@pytest.mark.parametrize("module", ALL_MODULES)
def test_every_standin_answers_health_with_its_module_name(cluster, http, module):
    resp = http.get(cluster.urls[module] + "/health", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"module": module, "status": "ok"}


def test_cluster_env_names_every_module_url(cluster):
    env = cluster.env()
    assert set(env) == {"SWITCH_URL", "HERMES_URL", "HORMIGUERO_URL", "MANIFESTATOR_URL", "SHUB_URL", "SPAWNER_URL"}
    assert env["SHUB_URL"] == cluster.urls["shub"]
    assert all(url.startswith("http://127.0.0.1:") for url in env.values())


@pytest.mark.parametrize("module", ALL_MODULES)
def test_a_call_without_the_right_token_is_refused_with_401_auth_required(cluster, http, module):
    for token in (None, "wrong-token"):
        resp = call(http, cluster, module, token=token)
        assert resp.status_code == 401
        assert resp.json() == {"detail": "auth_required"}


def test_health_needs_no_token(cluster, http):
    assert http.get(cluster.urls["switch"] + "/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("prompt", "domain", "action", "target"),
    [
        ("please delete the hormiguero cache", "system", "delete", "hormiguero"),
        ("borra los logs de shub", "system", "delete", "shub"),
        ("remove it", "system", "delete", None),
        ("what is the status of switch", "system", "status", "switch"),
        ("mix the stems", "audio", "mix", None),
        ("mezcla la pista", "audio", "mix", None),
        ("launch a job on spawner", "spawner", "run", "spawner"),
        ("run a job", "spawner", "run", None),
        ("run fast", "general", "chat", None),
        ("tell me a joke", "general", "chat", None),
    ],
)
def test_switch_returns_a_dsl_for_an_intent_parse_prompt(cluster, http, prompt, domain, action, target):
    body = {"prompt": prompt, "metadata": {"purpose": "intent_parse"}, "source": "madre"}
    resp = call(http, cluster, "switch", body, key=None)
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["status"] == "ok"
    dsl = answer["dsl"]
    assert (dsl["domain"], dsl["action"], dsl.get("target")) == (domain, action, target)
    assert dsl["parameters"] == {}
    assert 0 < dsl["confidence"] <= 1


def test_switch_dsl_matches_whole_words_only():
    assert standin_dsl("the mixer shows a statuses page")["action"] == "chat"
    assert "target" not in standin_dsl("switchboard")


def test_switch_echoes_a_routed_prompt_as_a_reply(cluster, http):
    resp = call(http, cluster, "switch", {"prompt": "summarise the logs", "metadata": {}, "source": "madre"})
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "provider": "standin", "reply": "[standin] summarise the logs",
                           "model": "standin-echo"}


def test_switch_refuses_a_body_without_a_prompt(cluster, http):
    resp = call(http, cluster, "switch", {"metadata": {}})
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid_body"


def test_each_module_route_answers_its_shape(cluster, http):
    body = {"task": "normalize", "params": {"gain": 3}, "daughter_task_id": 41}
    hermes = call(http, cluster, "hermes", body).json()
    assert hermes == {"status": "ok", "module": "hermes", "echo": body}
    hormiguero = call(http, cluster, "hormiguero", body).json()
    assert hormiguero["status"] == "ok" and hormiguero["module"] == "hormiguero" and len(hormiguero["task_id"]) == 36
    assert call(http, cluster, "manifestator", body).json() == {"status": "ok", "module": "manifestator", "drift": []}
    assert call(http, cluster, "shub", body).json() == {"status": "ok", "module": "shub", "task": "normalize",
                                                         "params": {"gain": 3}}
    spawner = call(http, cluster, "spawner", body).json()
    assert spawner["status"] == "accepted" and spawner["daughter_task_id"] == 41 and len(spawner["spawn_uuid"]) == 36


def test_an_unknown_path_is_recorded_and_answers_a_json_404(cluster, http):
    resp = http.post(cluster.urls["shub"] + "/drift", json={}, headers=headers(), timeout=5)
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"
    assert [r.path for r in cluster.recorder.requests("shub")] == ["/drift"]


def test_a_repeated_idempotency_key_replays_the_first_answer_and_counts_both(cluster, http):
    first = call(http, cluster, "hormiguero", {"scan": "all"}, key="step-42")
    second = call(http, cluster, "hormiguero", {"scan": "all"}, key="step-42")
    other = call(http, cluster, "hormiguero", {"scan": "all"}, key="step-43")
    assert first.json() == second.json()
    assert other.json()["task_id"] != first.json()["task_id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert cluster.recorder.idempotency_counts("hormiguero") == {"step-42": 2, "step-43": 1}
    assert cluster.recorder.idempotency_counts("shub") == {}


def test_the_recorder_keeps_method_path_lower_case_headers_and_body(cluster, http):
    call(http, cluster, "shub", {"task": "mix", "params": {}}, key="step-7")
    [received] = cluster.recorder.requests("shub")
    assert isinstance(received, Received)
    assert (received.module, received.method, received.path) == ("shub", "POST", "/shub/process")
    assert received.headers["x-vx11-token"] == TOKEN
    assert received.headers["idempotency-key"] == "step-7"
    assert received.idempotency_key == "step-7" and received.token == TOKEN
    assert received.body == {"task": "mix", "params": {}}
    assert received.time <= time.monotonic()
    assert cluster.recorder.requests("hermes") == []
    assert cluster.recorder.requests() == [received]


# ------------------------------------------------------------------------------------------ misbehaviour


def test_fail_mode_answers_a_500_json_error(cluster, http):
    cluster.behaviours["hermes"].mode = "fail"
    resp = call(http, cluster, "hermes")
    assert resp.status_code == 500
    assert resp.json()["error"] == "standin_failure"


def test_hang_mode_times_the_client_out_until_released(cluster, http):
    cluster.behaviours["shub"].mode = "hang"
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(http, cluster, "shub", timeout=0.3)
    assert time.monotonic() - started < 2
    assert cluster.recorder.wait_for_calls("shub", 1, timeout=2)
    cluster.behaviours["shub"].release_all()
    cluster.behaviours["shub"].mode = "ok"
    assert call(http, cluster, "shub", key="step-after").status_code == 200


def test_a_released_hang_answers_normally(cluster, http):
    behaviour = cluster.behaviours["hermes"]
    behaviour.mode = "hang"
    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(call(http, cluster, "hermes", {"x": 1})))
    client.start()
    assert cluster.recorder.wait_for_calls("hermes", 1, timeout=5)
    assert client.is_alive()
    behaviour.release_all()
    client.join(5)
    assert answers[0].status_code == 200 and answers[0].json()["echo"] == {"x": 1}


def test_slow_mode_answers_ok_after_the_delay(cluster, http):
    cluster.behaviours["manifestator"].set("slow", delay=0.3)
    started = time.monotonic()
    resp = call(http, cluster, "manifestator")
    assert time.monotonic() - started >= 0.3
    assert resp.status_code == 200 and resp.json()["drift"] == []
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(http, cluster, "manifestator", key="step-2", timeout=0.1)


def test_html_mode_answers_200_with_an_html_page(cluster, http):
    cluster.behaviours["switch"].mode = "html"
    resp = call(http, cluster, "switch")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()


def test_garbage_mode_answers_200_json_that_does_not_parse(cluster, http):
    cluster.behaviours["hormiguero"].mode = "garbage"
    resp = call(http, cluster, "hormiguero")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()


def test_close_mode_drops_the_connection_mid_answer(cluster, http):
    cluster.behaviours["spawner"].mode = "close"
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        call(http, cluster, "spawner")
    cluster.behaviours["spawner"].mode = "ok"
    assert call(http, cluster, "spawner", key="step-2").status_code == 200


def test_unauthorized_mode_answers_401_even_with_the_right_token(cluster, http):
    cluster.behaviours["shub"].mode = "unauthorized"
    resp = call(http, cluster, "shub")
    assert resp.status_code == 401
    assert resp.json() == {"detail": "auth_required"}


def test_fail_times_fails_the_next_calls_then_succeeds_on_the_same_key(cluster, http):
    cluster.behaviours["shub"].fail_times(2)
    codes = [call(http, cluster, "shub", {"task": "mix"}, key="step-9").status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert cluster.behaviours["shub"].pending_failures == 0
    assert cluster.recorder.idempotency_counts("shub") == {"step-9": 3}


def test_health_follows_the_mode_but_not_unauthorized_nor_fail_times(cluster, http):
    url = cluster.urls["hermes"] + "/health"
    behaviour = cluster.behaviours["hermes"]
    behaviour.mode = "fail"
    assert http.get(url, timeout=5).status_code == 500
    behaviour.mode = "unauthorized"
    assert http.get(url, timeout=5).status_code == 200
    behaviour.mode = "ok"
    behaviour.fail_times(1)
    assert http.get(url, timeout=5).status_code == 200
    assert behaviour.pending_failures == 1


def test_a_behaviour_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown stand-in mode"):
        Behaviour().mode = "explode"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        Behaviour().fail_times(-1)


# ------------------------------------------------------------------------------------------ recorder


def test_recorder_wait_for_wakes_on_an_arrival_without_sleeping_out_its_timeout(cluster, http):
    poster = threading.Timer(0.1, lambda: call(http, cluster, "shub"))
    poster.start()
    started = time.monotonic()
    try:
        assert cluster.recorder.wait_for(lambda r: len(r.calls("shub")) >= 1, timeout=10)
    finally:
        poster.join()
    assert time.monotonic() - started < 2


def test_recorder_wait_for_gives_up_after_its_timeout():
    recorder = Recorder()
    started = time.monotonic()
    assert recorder.wait_for(lambda r: len(r.requests()) > 0, timeout=0.2) is False
    assert 0.2 <= time.monotonic() - started < 1.5


def test_recorder_wait_for_is_woken_by_a_record_from_another_thread():
    recorder = Recorder()
    arrival = Received("shub", "POST", "/shub/process", {}, None, time.monotonic())
    woken = threading.Event()

    def waiter() -> None:
        if recorder.wait_for(lambda r: len(r.requests("shub")) == 1, timeout=10):
            woken.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    recorder.record(arrival)
    thread.join(5)
    assert woken.is_set()
    recorder.clear()
    assert recorder.requests() == [] and recorder.idempotency_counts() == {}


# ------------------------------------------------------------------------------------------ spawner callback


class CallbackSink:
    """A tiny Madre: records the job callbacks posted to /madre/callback/spawn."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.cond = threading.Condition()
        self.app = Starlette(routes=[Route("/madre/callback/spawn", self.callback, methods=["POST"])])

    async def callback(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self.cond:
            self.received.append((body, dict(request.headers)))
            self.cond.notify_all()
        return JSONResponse({"ok": True})

    def wait(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.received) >= count, timeout)


def test_spawner_posts_the_job_callback_to_madre_once_per_key():
    sink = CallbackSink()
    with LoopbackServer(sink.app, name="sink") as madre, StandinCluster(token=TOKEN, modules=["spawner"]) as cluster:
        cluster.madre_url = madre.url
        cluster.behaviours["spawner"].complete_after = 0.05
        with requests.Session() as http:
            first = call(http, cluster, "spawner", {"cmd": "echo", "daughter_task_id": 7}, key="step-s")
            replay = call(http, cluster, "spawner", {"cmd": "echo", "daughter_task_id": 7}, key="step-s")
        assert first.json() == replay.json()
        assert sink.wait(1, timeout=5)
        assert cluster.recorder.wait_for(lambda r: len(r.callbacks()) == 1, timeout=5)
    body, sent_headers = sink.received[0]
    assert body == {"daughter_task_id": 7, "status": "ok",
                    "result": {"spawn_uuid": first.json()["spawn_uuid"], "exit_code": 0, "stdout": "standin job done"}}
    assert sent_headers["x-vx11-token"] == TOKEN
    assert len(sink.received) == 1  # the replay did not launch the job again
    [attempt] = cluster.recorder.callbacks("spawner")
    assert attempt.status_code == 200 and attempt.error is None
    assert attempt.url == madre.url + "/madre/callback/spawn"


def test_spawner_can_report_a_failed_job():
    sink = CallbackSink()
    with LoopbackServer(sink.app, name="sink") as madre, \
            StandinCluster(token=TOKEN, modules=["spawner"], madre_url=madre.url) as cluster:
        cluster.behaviours["spawner"].spawn_outcome = "error"
        cluster.behaviours["spawner"].complete_after = 0.0
        with requests.Session() as http:
            call(http, cluster, "spawner", {"daughter_task_id": "d-1"})
        assert sink.wait(1, timeout=5)
    body, _ = sink.received[0]
    assert body["status"] == "error" and body["daughter_task_id"] == "d-1" and body["error"]


def test_spawner_callback_errors_are_swallowed_and_recorded():
    closed_port = free_port()
    with StandinCluster(token=TOKEN, modules=["spawner"], madre_url=f"http://127.0.0.1:{closed_port}") as cluster:
        cluster.behaviours["spawner"].complete_after = 0.0
        with requests.Session() as http:
            assert call(http, cluster, "spawner", {"daughter_task_id": 1}).status_code == 200
            assert cluster.recorder.wait_for(lambda r: len(r.callbacks()) == 1, timeout=5)
            assert http.get(cluster.urls["spawner"] + "/health", timeout=5).status_code == 200
    [attempt] = cluster.recorder.callbacks()
    assert attempt.status_code is None and "ConnectionError" in attempt.error


def test_spawner_without_a_madre_url_posts_no_callback(cluster, http):
    call(http, cluster, "spawner", {"daughter_task_id": 3})
    assert cluster.recorder.wait_for(lambda r: len(r.callbacks()) > 0, timeout=0.4) is False


# ------------------------------------------------------------------------------------------ servers


def test_stopping_a_cluster_leaves_no_non_daemon_thread_alive():
    before = set(threading.enumerate())
    cluster = StandinCluster(token=TOKEN)
    with cluster, requests.Session() as http:
        cluster.behaviours["shub"].mode = "hang"
        with pytest.raises(requests.exceptions.ReadTimeout):
            call(http, cluster, "shub", timeout=0.2)  # a handler still hanging at stop
        cluster.behaviours["shub"].mode = "ok"
        cluster.behaviours["hermes"].set("slow", delay=0.05)
        for module in ALL_MODULES:
            call(http, cluster, module, key="step-t")
    left = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert left == []
    assert cluster.urls == {} and cluster.servers == {}


def test_a_subset_of_modules_can_run_on_given_ports():
    port = free_port()
    with StandinCluster(modules=["shub"], ports={"shub": port}) as cluster, requests.Session() as http:
        assert cluster.urls == {"shub": f"http://127.0.0.1:{port}"}
        assert cluster.env() == {"SHUB_URL": f"http://127.0.0.1:{port}"}
        assert http.post(f"http://127.0.0.1:{port}/shub/process", json={}, timeout=5,
                         headers=headers(token="vx11-local-token")).status_code == 200


def test_a_cluster_refuses_an_unknown_module():
    with pytest.raises(ValueError, match="unknown modules"):
        StandinCluster(modules=["switch", "tentacle"])


def test_a_loopback_server_raises_when_its_port_is_taken():
    app = Starlette()
    with LoopbackServer(app, name="first") as first:
        second = LoopbackServer(app, port=first.port, name="second")
        with pytest.raises(LoopbackStartError, match="failed to start"):
            second.start()
        assert not second.thread.is_alive()


def test_a_loopback_server_runs_the_app_lifespan_when_asked():
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(lifespan=lifespan)
    with LoopbackServer(app, lifespan="on") as server:
        assert events == ["startup"]
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.server.started
    assert events == ["startup", "shutdown"]


def test_a_loopback_server_raises_when_the_app_fails_to_start():
    @asynccontextmanager
    async def lifespan(app):
        raise RuntimeError("no database")
        yield

    with pytest.raises(LoopbackStartError):
        LoopbackServer(Starlette(lifespan=lifespan), lifespan="on").start()
