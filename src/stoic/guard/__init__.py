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
from ._policies import (
    BreakerPolicy,
    Bulkhead,
    Fallback,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)
from ._registry import Registry, registry

__all__ = [
    "FAULT_KINDS",
    "BreakerControl",
    "BreakerOpen",
    "BreakerPolicy",
    "Bulkhead",
    "BulkheadFull",
    "Clock",
    "ConfigError",
    "DeadlineExceeded",
    "Dependency",
    "DependencyFailed",
    "Event",
    "FailedResult",
    "Fallback",
    "Fault",
    "GuardError",
    "InjectedFailure",
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
    "current_fault",
    "inject",
    "registry",
    "retry_after_seconds",
    "set_process_injector",
]
