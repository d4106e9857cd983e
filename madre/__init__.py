"""Madre, the orchestrator of the VX11 services.

    from madre import Madre, Settings, create_app

`Madre` is the in-process runtime (a context manager); `create_app(madre)` builds the HTTP
front end over a running one.
"""

from madre.errors import MadreError
from madre.runtime import Madre
from madre.settings import Settings, load_settings
from madre.version import __version__


def create_app(madre: Madre):  # type: ignore[no-untyped-def]  # noqa: ANN201
    """The Starlette app over a running `madre` (imported lazily: embedding needs no HTTP)."""
    from madre.http.app import create_app as _create_app

    return _create_app(madre)


__all__ = ["Madre", "MadreError", "Settings", "__version__", "create_app", "load_settings"]
