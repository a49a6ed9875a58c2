"""stoic.guard: every outbound call with a deadline, a bulkhead, a breaker, retries and fallbacks.

Standard library only.

>>> from stoic.guard import Dependency, Fallback
>>> catalog = Dependency("catalog", timeout=0.2, fallbacks=[Fallback.value([], name="empty")])
>>> catalog.execute(lambda: 1 / 0).source
'empty'
"""

from ._clock import Clock, ManualClock, SystemClock, VirtualTimeLoop
from ._dependency import BreakerControl, Dependency
from ._errors import (
    BreakerOpen,
    BulkheadFull,
    ConfigError,
    DeadlineExceeded,
    DependencyFailed,
    FailedResult,
    GuardError,
    InjectedFailure,
)
from ._events import Event, Outcome, Result
from ._http import retry_after_seconds
from ._inject import FAULT_KINDS, Fault, Injector, current_fault, inject, set_process_injector
from ._middleware import DeadlineMiddleware, DeadlineWSGIMiddleware
from ._policies import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Bulkhead,
    Fallback,
    Hedge,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)
from ._registry import Registry, registry
from ._replay import EventRecorder
from ._stand_in import InjectedStatus
from ._travel import (
    DEADLINE_HEADER,
    call_timeout,
    deadline,
    deadline_headers,
    format_timeout,
    parse_timeout,
    time_left,
)

__all__ = [
    "DEADLINE_HEADER",
    "FAULT_KINDS",
    "AdaptiveBulkhead",
    "BreakerControl",
    "BreakerOpen",
    "BreakerPolicy",
    "Bulkhead",
    "BulkheadFull",
    "Clock",
    "ConfigError",
    "DeadlineExceeded",
    "DeadlineMiddleware",
    "DeadlineWSGIMiddleware",
    "Dependency",
    "DependencyFailed",
    "Event",
    "EventRecorder",
    "FailedResult",
    "Fallback",
    "Fault",
    "GuardError",
    "Hedge",
    "InjectedFailure",
    "InjectedStatus",
    "Injector",
    "ManualClock",
    "Outcome",
    "Registry",
    "Result",
    "Retry",
    "RetryBudget",
    "SemaphoreBulkhead",
    "SystemClock",
    "ThreadPoolBulkhead",
    "VirtualTimeLoop",
    "call_timeout",
    "current_fault",
    "deadline",
    "deadline_headers",
    "format_timeout",
    "inject",
    "parse_timeout",
    "registry",
    "retry_after_seconds",
    "set_process_injector",
    "time_left",
]
