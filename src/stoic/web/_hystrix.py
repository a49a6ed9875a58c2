"""Guard snapshots in the Hystrix dashboard's stream format (HystrixCommand / HystrixThreadPool JSON)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

# Hystrix reports these latency percentiles; guard keeps p50/p90/p99/p999/max and the mean, so the
# others are taken from the nearest one kept (a dashboard only draws 50/90/99 and the mean anyway).
_PERCENTILE_SOURCE = {
    "0": "p50",
    "25": "p50",
    "50": "p50",
    "75": "p90",
    "90": "p90",
    "95": "p99",
    "99": "p99",
    "99.5": "p999",
    "100": "max",
}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _latency(latency_ms: Mapping[str, Any]) -> dict[str, int]:
    return {pct: _int(round(float(latency_ms.get(key, 0) or 0))) for pct, key in _PERCENTILE_SOURCE.items()}


def _policy_value(dependency: Any, attr: str, default: Any) -> Any:
    policy = getattr(dependency, "breaker_policy", None)
    return getattr(policy, attr, default) if policy is not None else default


def hystrix_command(
    snap: Mapping[str, Any], dependency: Any = None, now: float | None = None
) -> dict[str, Any]:
    """One `HystrixCommand` object for the Hystrix dashboard from a guard snapshot.

    `dependency` (optional, the `stoic.guard.Dependency`) lets the configured thresholds and forced
    breaker states show as `propertyValue_*` fields.
    """
    counts: Mapping[str, Any] = snap.get("counts") or {}
    latency_ms: Mapping[str, Any] = snap.get("latency_ms") or {}
    name = str(snap.get("name", "unknown"))
    group = str(snap.get("owner") or name)
    state = snap.get("state", "closed")
    isolation = "THREAD" if snap.get("isolation") == "thread" else "SEMAPHORE"
    failure = _int(counts.get("failure"))
    timeout = _int(counts.get("timeout"))
    rejected = _int(counts.get("rejected"))
    short = _int(counts.get("short_circuited"))
    timeout_s = snap.get("timeout")
    timeout_ms = int(timeout_s * 1000) if isinstance(timeout_s, int | float) else 0
    window_ms = int(float(snap.get("window_s") or _policy_value(dependency, "window", 10.0)) * 1000)
    latency = _latency(latency_ms)
    forced = bool(getattr(getattr(dependency, "breaker", None), "forced", False))
    mean = _int(round(float(latency_ms.get("mean", 0) or 0)))
    return {
        "type": "HystrixCommand",
        "name": name,
        "group": group,
        "currentTime": int((time.time() if now is None else now) * 1000),
        "isCircuitBreakerOpen": state != "closed",
        "errorPercentage": _int(round(float(snap.get("error_percentage", 0) or 0))),
        "errorCount": failure + timeout + rejected + short,
        "requestCount": _int(snap.get("requests")),
        "rollingCountBadRequests": 0,
        "rollingCountCollapsedRequests": 0,
        "rollingCountEmit": 0,
        "rollingCountExceptionsThrown": _int(counts.get("fallback_failure")),
        "rollingCountFailure": failure,
        "rollingCountFallbackEmit": 0,
        "rollingCountFallbackFailure": _int(counts.get("fallback_failure")),
        "rollingCountFallbackMissing": 0
        if snap.get("has_fallback", True)
        else failure + timeout + rejected + short,
        "rollingCountFallbackRejection": 0,
        "rollingCountFallbackSuccess": _int(counts.get("fallback_success")),
        "rollingCountResponsesFromCache": 0,
        "rollingCountSemaphoreRejected": rejected if isolation == "SEMAPHORE" else 0,
        "rollingCountShortCircuited": short,
        "rollingCountSuccess": _int(counts.get("success")),
        "rollingCountThreadPoolRejected": rejected if isolation == "THREAD" else 0,
        "rollingCountTimeout": timeout,
        "currentConcurrentExecutionCount": _int(snap.get("concurrent")),
        "rollingMaxConcurrentExecutionCount": _int(snap.get("concurrent")),
        "latencyExecute_mean": mean,
        "latencyExecute": latency,
        "latencyTotal_mean": mean,
        "latencyTotal": dict(latency),
        "propertyValue_circuitBreakerRequestVolumeThreshold": _int(
            _policy_value(dependency, "min_calls", 20)
        ),
        "propertyValue_circuitBreakerSleepWindowInMilliseconds": int(
            float(_policy_value(dependency, "open_for", 5.0))
            * 1000
        ),
        "propertyValue_circuitBreakerErrorThresholdPercentage": _int(
            round(100 * float(_policy_value(dependency, "error_rate", 0.5)))
        ),
        "propertyValue_circuitBreakerForceOpen": forced and state == "open",
        "propertyValue_circuitBreakerForceClosed": forced and state == "closed",
        "propertyValue_circuitBreakerEnabled": True,
        "propertyValue_executionIsolationStrategy": isolation,
        "propertyValue_executionIsolationThreadTimeoutInMilliseconds": timeout_ms,
        "propertyValue_executionTimeoutInMilliseconds": timeout_ms,
        "propertyValue_executionIsolationThreadInterruptOnTimeout": False,
        "propertyValue_executionIsolationThreadPoolKeyOverride": None,
        "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests": _int(snap.get("max_concurrent")),
        "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests": _int(snap.get("max_concurrent")),
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": window_ms,
        "propertyValue_requestCacheEnabled": False,
        "propertyValue_requestLogEnabled": False,
        "reportingHosts": 1,
        "threadPool": name,
    }


def hystrix_thread_pool(
    snap: Mapping[str, Any], dependency: Any = None, now: float | None = None
) -> dict[str, Any]:
    """One `HystrixThreadPool` object for a thread-pool isolated dependency.

    Pool size and queue come from the dependency's `ThreadPoolBulkhead` when given; otherwise the
    snapshot's capacity is taken as the pool size.
    """
    counts: Mapping[str, Any] = snap.get("counts") or {}
    bulkhead = getattr(dependency, "bulkhead", None)
    in_flight = _int(snap.get("concurrent"))
    workers = _int(getattr(bulkhead, "workers", None)) or _int(snap.get("max_concurrent"))
    queue = _int(getattr(bulkhead, "queue", 0))
    active = min(in_flight, workers)
    executed = sum(_int(counts.get(k)) for k in ("success", "failure", "timeout"))
    window_s = float(snap.get("window_s") or 10.0)
    return {
        "type": "HystrixThreadPool",
        "name": str(snap.get("name", "unknown")),
        "currentTime": int((time.time() if now is None else now) * 1000),
        "currentActiveCount": active,
        "currentCompletedTaskCount": executed,
        "currentCorePoolSize": workers,
        "currentLargestPoolSize": workers,
        "currentMaximumPoolSize": workers,
        "currentPoolSize": workers,
        "currentQueueSize": in_flight - active,
        "currentTaskCount": executed + in_flight,
        "rollingCountThreadsExecuted": executed,
        "rollingMaxActiveThreads": active,
        "rollingCountCommandRejections": _int(counts.get("rejected")),
        "propertyValue_queueSizeRejectionThreshold": queue,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds": int(window_s * 1000),
        "reportingHosts": 1,
    }
