"""Every policy field out of range raises ConfigError naming the field and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    ConfigError,
    Dependency,
    Fallback,
    Fault,
    Registry,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)

NAN = float("nan")
INF = float("inf")

CASES: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
    # (factory, bad fields, what the message must say)
    (BreakerPolicy, {"window": 0}, "BreakerPolicy.window must be in (0.0, 3600.0], got 0"),
    (BreakerPolicy, {"window": 3601}, "BreakerPolicy.window must be in (0.0, 3600.0]"),
    (BreakerPolicy, {"window": NAN}, "BreakerPolicy.window must be in (0.0, 3600.0]"),
    (BreakerPolicy, {"window": "10"}, "BreakerPolicy.window must be a number"),
    (BreakerPolicy, {"window": True}, "BreakerPolicy.window must be a number"),
    (BreakerPolicy, {"buckets": 0}, "BreakerPolicy.buckets must be in [1, 1000], got 0"),
    (BreakerPolicy, {"buckets": 1001}, "BreakerPolicy.buckets must be in [1, 1000]"),
    (BreakerPolicy, {"buckets": 2.5}, "BreakerPolicy.buckets must be an integer"),
    (BreakerPolicy, {"window": 0.005, "buckets": 10},
     "BreakerPolicy.buckets: window / buckets must be >= 1 ms"),
    (BreakerPolicy, {"min_calls": 0}, "BreakerPolicy.min_calls must be in [1, "),
    (BreakerPolicy, {"error_rate": 0}, "BreakerPolicy.error_rate must be in (0.0, 1.0], got 0"),
    (BreakerPolicy, {"error_rate": 1.01}, "BreakerPolicy.error_rate must be in (0.0, 1.0]"),
    (BreakerPolicy, {"open_for": 0}, "BreakerPolicy.open_for must be in (0.0, 86400.0]"),
    (BreakerPolicy, {"open_for": INF}, "BreakerPolicy.open_for must be in (0.0, 86400.0]"),
    (BreakerPolicy, {"trial_calls": 0}, "BreakerPolicy.trial_calls must be in [1, 10000]"),
    (BreakerPolicy, {"slow_call": 0}, "BreakerPolicy.slow_call must be in (0.0, 3600.0]"),
    (BreakerPolicy, {"slow_rate": 0}, "BreakerPolicy.slow_rate must be in (0.0, 1.0]"),
    (BreakerPolicy, {"check_interval": -0.1}, "BreakerPolicy.check_interval must be in [0.0, 60.0]"),
    (BreakerPolicy, {"check_interval": 61}, "BreakerPolicy.check_interval must be in [0.0, 60.0]"),
    (BreakerPolicy, {"failure_on": ("ConnectionError",)},
     "BreakerPolicy.failure_on must be exception classes"),
    (BreakerPolicy, {"ignore": (int,)}, "BreakerPolicy.ignore must be exception classes"),
    (BreakerPolicy, {"window_calls": 0}, "BreakerPolicy.window_calls must be in [1, 1000000], got 0"),
    (BreakerPolicy, {"consecutive_failures": 0},
     "BreakerPolicy.consecutive_failures must be in [1, 1000000], got 0"),
    (BreakerPolicy, {"open_for_max": 1.0}, "BreakerPolicy.open_for_max must be in [5.0, 86400.0], got 1.0"),
    (BreakerPolicy, {"open_backoff": 0.5}, "BreakerPolicy.open_backoff must be in [1.0, 100.0], got 0.5"),
    (SemaphoreBulkhead, {"max_concurrent": 0}, "SemaphoreBulkhead.max_concurrent must be in [1, 1000000]"),
    (SemaphoreBulkhead, {"max_wait": -1}, "SemaphoreBulkhead.max_wait must be in [0.0, 3600.0]"),
    (ThreadPoolBulkhead, {"workers": 0}, "ThreadPoolBulkhead.workers must be in [1, 10000]"),
    (ThreadPoolBulkhead, {"queue": -1}, "ThreadPoolBulkhead.queue must be in [0, 1000000]"),
    (RetryBudget, {"ratio": -0.1}, "RetryBudget.ratio must be in [0.0, 1000.0]"),
    (RetryBudget, {"min_per_second": -1}, "RetryBudget.min_per_second must be in [0.0, "),
    (Retry, {"attempts": 0}, "Retry.attempts must be in [1, 100], got 0"),
    (Retry, {"attempts": 101}, "Retry.attempts must be in [1, 100]"),
    (Retry, {"initial": -0.01}, "Retry.initial must be in [0.0, 3600.0]"),
    (Retry, {"maximum": -1}, "Retry.maximum must be in [0.0, 3600.0]"),
    (Retry, {"multiplier": 0.5}, "Retry.multiplier must be in [1.0, 100.0]"),
    (Retry, {"jitter": "half"}, "Retry.jitter must be one of 'full', 'none', got 'half'"),
    (Retry, {"retry_on": [1]}, "Retry.retry_on must be exception classes"),
    (Retry, {"retry_when": 503}, "Retry.retry_when must be a function of one value or None, got 503"),
    (Retry, {"retry_after": "Retry-After"},
     "Retry.retry_after must be a function of one value or None, got 'Retry-After'"),
    (Retry, {"total": 0}, "Retry.total must be in (0.0, 86400.0], got 0"),
    (Retry, {"total": NAN}, "Retry.total must be in (0.0, 86400.0]"),
    (Retry, {"budget": 0.2}, "Retry.budget must be a RetryBudget or None, got 0.2"),
    (BreakerPolicy, {"failure_when": "5xx"},
     "BreakerPolicy.failure_when must be a function of one value or None, got '5xx'"),
    (Fallback, {"fn": "popular"}, "Fallback.fn must be callable"),
    (Fallback, {"fn": list, "timeout": 0}, "Fallback.timeout must be in (0.0, 3600.0]"),
    (Fault, {"kind": "explode"},
     "Fault.kind must be one of error, delay, timeout, reject, status, result; got 'explode'"),
    (Fault, {"kind": "delay", "delay": -1}, "Fault.delay must be a number of seconds in [0, 3600]"),
    (Fault, {"kind": "delay", "delay": "1"}, "Fault.delay must be a number of seconds in [0, 3600]"),
    (Fault, {"kind": "status", "status": 200},
     "Fault.status must be an HTTP error status, an integer in [400, 599]"),
    (Fault, {"kind": "status", "status": 503, "retry_after": -1},
     "Fault.retry_after must be seconds in [0, 86400]"),
    (Fault, {"kind": "error", "value": []}, "Fault.value is for kind 'result' only"),
    (Fault, {"kind": "delay", "delay": 3601}, "Fault.delay must be a number of seconds in [0, 3600]"),
    (Dependency, {"name": ""}, "Dependency.name must be a non-empty string"),
    (Dependency, {"name": "  "}, "Dependency.name must be a non-empty string"),
    (Dependency, {"name": 5}, "Dependency.name must be a non-empty string"),
    (Dependency, {"timeout": 0}, "Dependency.timeout must be in (0.0, 3600.0], got 0"),
    (Dependency, {"timeout": -1}, "Dependency.timeout must be in (0.0, 3600.0]"),
    (Dependency, {"bulkhead": 10},
     "Dependency.bulkhead must be SemaphoreBulkhead, ThreadPoolBulkhead, AdaptiveBulkhead or None"),
    (Dependency, {"breaker": {"min_calls": 5}}, "Dependency.breaker must be a BreakerPolicy or None"),
    (Dependency, {"retry": 3}, "Dependency.retry must be a Retry or None"),
]


def build(factory: Callable[..., Any], fields: dict[str, Any]) -> Any:
    if factory is Dependency:
        fields = {"name": "svc", "registry": Registry(), **fields}
        return Dependency(fields.pop("name"), **fields)
    if factory is Fallback:
        return Fallback(**fields)
    if factory is Fault:
        return Fault(**fields)
    return factory(**fields)


@pytest.mark.parametrize(("factory", "fields", "message"), CASES,
                         ids=[f"{f.__name__}-{'-'.join(k)}-{i}" for i, (f, k, _) in enumerate(CASES)])
def test_out_of_range_is_named(factory: Callable[..., Any], fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(factory, fields)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_every_numeric_policy_field_is_covered() -> None:
    covered = {(f.__name__, k) for f, fields, _ in CASES for k in fields}
    for cls in (BreakerPolicy, SemaphoreBulkhead, ThreadPoolBulkhead, RetryBudget, Retry, Fault):
        for name in cls.__dataclass_fields__:  # type: ignore[attr-defined]
            if name == "message":
                continue  # free text
            assert (cls.__name__, name) in covered, f"{cls.__name__}.{name} has no out-of-range case"


def test_the_edges_of_each_range_are_allowed() -> None:
    BreakerPolicy(window=3600, buckets=1000, min_calls=1, error_rate=1.0, open_for=86400, trial_calls=10_000,
                  slow_call=3600, slow_rate=1.0, check_interval=0, failure_on=ConnectionError,
                  ignore=[KeyError])
    BreakerPolicy(window=0.001, buckets=1, check_interval=60)
    SemaphoreBulkhead(max_concurrent=1, max_wait=0)
    ThreadPoolBulkhead(workers=1, queue=0)
    Retry(attempts=1, initial=0, maximum=0, multiplier=1, jitter="none", budget=None)
    Retry(attempts=100, budget=RetryBudget(ratio=0, min_per_second=0), total=86400,
          retry_when=bool, retry_after=lambda seen: None)
    BreakerPolicy(failure_when=lambda answer: answer is None)
    Fault("delay", delay=3600)
    Fault("timeout", delay=0)
    Fallback(list, timeout=3600)
    Dependency("svc", timeout=None, breaker=None, bulkhead=None, registry=Registry())
    Dependency("svc", timeout=3600, registry=Registry())
    assert BreakerPolicy(failure_on=ConnectionError).failure_on == (ConnectionError,)
    assert BreakerPolicy(ignore=[KeyError]).ignore == (KeyError,)


def test_policies_are_immutable() -> None:
    policy = BreakerPolicy()
    with pytest.raises(AttributeError):
        policy.min_calls = 1  # type: ignore[misc]


def test_defaults_are_hystrix() -> None:
    policy = BreakerPolicy()
    assert (policy.window, policy.buckets, policy.min_calls, policy.error_rate, policy.open_for) == \
        (10.0, 10, 20, 0.5, 5.0)
    assert SemaphoreBulkhead().max_concurrent == 10
    assert ThreadPoolBulkhead().workers == 10
    dep = Dependency("svc", registry=Registry())
    assert dep.timeout == 1.0 and dep.breaker_policy == policy
