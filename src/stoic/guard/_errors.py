"""The typed errors a guarded call can raise."""

from __future__ import annotations

from collections.abc import Sequence


class GuardError(Exception):
    """Base of every error raised by the guard itself."""


class ConfigError(GuardError, ValueError):
    """A policy was given a value outside its allowed range; the message names the field."""


class BreakerOpen(GuardError):
    """The circuit breaker is open: the call was not attempted."""


class BulkheadFull(GuardError):
    """The bulkhead had no room: the call was not attempted."""


class DeadlineExceeded(GuardError, TimeoutError):
    """The call ran past its deadline and was cancelled or abandoned."""


class InjectedFailure(GuardError):
    """A failure injected on purpose through the fault injection point."""


class FailedResult(GuardError):
    """The primary answered, with a value counted as a failure (`BreakerPolicy.failure_when`) or
    worth another try (`Retry.retry_when`). `value` is what it returned."""

    def __init__(self, dependency: str, value: object, why: str = "counted as a failure") -> None:
        self.value = value
        super().__init__(f"{dependency}: answered {_short(value)}, {why}")


class DependencyFailed(GuardError):
    """Every level failed: the primary call and each fallback. `causes` holds one error per level."""

    def __init__(self, dependency: str, causes: Sequence[tuple[str, BaseException]]) -> None:
        self.dependency = dependency
        self.causes = list(causes)
        detail = "; ".join(f"{source}: {type(err).__name__}: {err}" for source, err in self.causes)
        super().__init__(f"{dependency}: every level failed ({detail})")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
