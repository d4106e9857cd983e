"""Loopback stand-ins of the VX11 modules, for tests and for trying Madre alone.

    from madre.standins import StandinCluster
"""

from madre.standins.cluster import *  # noqa: F403
from madre.standins.cluster import __all__  # noqa: F401
