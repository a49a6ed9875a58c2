"""The Stoic dashboard and admin API: one page with live updates, JSON APIs, /metrics, /hystrix.stream.

>>> from stoic.web import create_app
>>> app = create_app(token="change-me-please")   # serve with uvicorn
"""

from ._app import BREAKER_ACTIONS, create_app
from ._hystrix import hystrix_command, hystrix_thread_pool
from ._merge import HystrixMerge, merge_hystrix
from ._metrics import GuardCollector
from ._page import VIEWS
from ._server import ServerLimits, serve, server_config
from ._sources import ChaosLog, GuardSource, ScenarioStore, SignalsSource
from ._views import HEALTH_LEVELS, dependency_view, health

__all__ = [
    "BREAKER_ACTIONS",
    "HEALTH_LEVELS",
    "VIEWS",
    "ChaosLog",
    "GuardCollector",
    "GuardSource",
    "HystrixMerge",
    "ScenarioStore",
    "ServerLimits",
    "SignalsSource",
    "create_app",
    "dependency_view",
    "health",
    "hystrix_command",
    "hystrix_thread_pool",
    "merge_hystrix",
    "serve",
    "server_config",
]
