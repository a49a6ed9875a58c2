"""The Stoic dashboard and admin API: one page with live updates, JSON APIs, /metrics, /hystrix.stream.

>>> from stoic.web import create_app
>>> app = create_app(token="change-me-please")   # serve with uvicorn
"""

from ._app import BREAKER_ACTIONS, create_app
from ._hystrix import hystrix_command, hystrix_thread_pool
from ._metrics import GuardCollector
from ._views import HEALTH_LEVELS, dependency_view, health

__all__ = [
    "BREAKER_ACTIONS",
    "HEALTH_LEVELS",
    "GuardCollector",
    "create_app",
    "dependency_view",
    "health",
    "hystrix_command",
    "hystrix_thread_pool",
]
