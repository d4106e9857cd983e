"""`StandinCluster`: the stand-ins of the VX11 modules served together on 127.0.0.1.

    with StandinCluster() as cluster:
        os.environ.update(cluster.env())      # SWITCH_URL, HERMES_URL, ...
        cluster.behaviours["shub"].fail_times(2)
        ...
        assert cluster.recorder.wait_for_calls("shub", 3, timeout=5)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.applications import Starlette

from madre.modules import BY_NAME
from madre.standins.apps import ALL_MODULES, CALL_PATHS, build_standin_app
from madre.standins.behaviour import Behaviour
from madre.standins.recorder import Recorder
from madre.standins.server import LoopbackServer

DEFAULT_PORTS: dict[str, int] = {m.name: m.port for m in BY_NAME.values()}
ENV_VARS: dict[str, str] = {m.name: m.url_variable for m in BY_NAME.values()}


class StandinCluster:
    """The stand-ins (all six, or `modules`) served on 127.0.0.1; a context manager.

    Ports are ephemeral unless `ports` gives some (e.g. `ports=DEFAULT_PORTS` for a quick start).
    `madre_url` (settable after start) is where the Spawner stand-in posts job callbacks.
    """

    def __init__(
        self,
        *,
        token: str = "vx11-local-token",
        modules: Iterable[str] = ALL_MODULES,
        madre_url: str | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self.modules = tuple(modules)
        unknown = [m for m in self.modules if m not in CALL_PATHS]
        if unknown:
            raise ValueError(f"unknown modules {unknown}; use some of {', '.join(ALL_MODULES)}")
        self.token = token
        self.recorder = Recorder()
        self.behaviours: dict[str, Behaviour] = {m: Behaviour() for m in self.modules}
        self.apps: dict[str, Starlette] = {
            m: build_standin_app(m, token=token, recorder=self.recorder, behaviour=self.behaviours[m],
                                 madre_url=madre_url)
            for m in self.modules
        }
        self.ports = dict(ports or {})
        self.servers: dict[str, LoopbackServer] = {}
        self.urls: dict[str, str] = {}

    @property
    def madre_url(self) -> str | None:
        return self.apps["spawner"].state.standin.madre_url if "spawner" in self.apps else None

    @madre_url.setter
    def madre_url(self, url: str | None) -> None:
        for app in self.apps.values():
            app.state.standin.madre_url = url

    def start(self) -> StandinCluster:
        try:
            for module in self.modules:
                server = LoopbackServer(self.apps[module], port=self.ports.get(module, 0),
                                        name=f"standin-{module}", shutdown_timeout=2.0)
                server.start()
                self.servers[module] = server
                self.urls[module] = server.url
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.release_all()
        for app in self.apps.values():
            app.state.standin.cancel_timers()
        for server in self.servers.values():
            server.server.should_exit = True  # all at once: each takes a tick to notice
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        self.urls.clear()

    def env(self) -> dict[str, str]:
        """SWITCH_URL, HERMES_URL, … for the running stand-ins."""
        return {ENV_VARS[m]: url for m, url in self.urls.items()}

    def release_all(self) -> None:
        for behaviour in self.behaviours.values():
            behaviour.release_all()

    def reset(self) -> None:
        """Every stand-in back to "ok" with its replay cache emptied, and the recorder emptied."""
        for behaviour in self.behaviours.values():
            behaviour.reset()
        for app in self.apps.values():
            app.state.standin.forget()
        self.recorder.clear()

    def __enter__(self) -> StandinCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
