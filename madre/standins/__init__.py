"""Loopback stand-ins of the VX11 modules Madre delegates to (Switch, Hermes, Hormiguero,
Manifestator, Shub and Spawner), for tests and for trying Madre alone.

    from madre.standins import StandinCluster

- `apps`: one small Starlette app per module, answering like the real one;
- `behaviour`: how a stand-in is told to misbehave; `recorder`: what they received;
- `server`: `LoopbackServer`, any ASGI app on 127.0.0.1; `cluster`: all of them together;
- `spawner_worker`: the Spawner's worker, which picks up daughter_tasks rows Madre wrote.
"""

from madre.standins.apps import ALL_MODULES, CALL_PATHS, build_standin_app, standin_dsl
from madre.standins.behaviour import MODES, Behaviour, BehaviourMode
from madre.standins.cluster import DEFAULT_PORTS, ENV_VARS, StandinCluster
from madre.standins.recorder import CallbackAttempt, Received, Recorder
from madre.standins.server import LoopbackServer, LoopbackStartError
from madre.standins.spawner_worker import SpawnerWorker

__all__ = [
    "ALL_MODULES", "CALL_PATHS", "DEFAULT_PORTS", "ENV_VARS", "MODES", "Behaviour",
    "BehaviourMode", "CallbackAttempt", "LoopbackServer", "LoopbackStartError", "Received",
    "Recorder", "SpawnerWorker", "StandinCluster", "build_standin_app", "standin_dsl",
]
