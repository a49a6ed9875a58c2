"""Fit: failure injection for the code running in one block, the body of the `fit` pytest fixture."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from contextlib import ExitStack
from types import TracebackType
from typing import Any

from stoic.fit._codec import HeaderCodec
from stoic.fit._identity import RequestIdentity
from stoic.fit._known import DependencyNames, warn_unknown
from stoic.fit._plan import FailurePlan, Injection, bind
from stoic.fit._scenario import Scenario
from stoic.guard import registry as guard_registry


class Fit:
    """Fail dependencies for everything run inside the block (this thread or task and its copies).

    >>> with Fit() as fit:
    ...     fit.fail("personalisation", kind="error")
    ...     assert personalisation.execute(fetch_rows, "u1").source == "popular"
    ...     assert fit.injected("personalisation") == 1

    A dependency name that `registry` (the guard's process registry unless given; None for no check)
    does not know warns with `FitWarning` and close matches.
    """

    def __init__(
        self, identity: RequestIdentity | None = None, *, registry: DependencyNames | None = guard_registry
    ) -> None:
        self.plan = FailurePlan((), identity)
        self.registry = registry
        self._names = itertools.count(1)
        self._stack: ExitStack | None = None

    def fail(
        self,
        dependencies: str | Iterable[str],
        kind: str = "error",
        *,
        delay: float = 0.0,
        percent: float = 100.0,
        user_ids: Iterable[str] | None = None,
        devices: Iterable[str] | None = None,
        name: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        result: Any = None,
    ) -> Scenario:
        """Add a scenario failing `dependencies` with `kind` (see `Scenario` for the fields):
        ``fit.fail("prices", "status", status=503, retry_after=2)``,
        ``fit.fail("recs", "result", result={"rows": []})``."""
        scenario = Scenario(
            name or f"fit-{next(self._names)}",
            dependencies,
            kind,
            delay=delay,
            percent=percent,
            user_ids=user_ids,
            devices=devices,
            status=status,
            retry_after=retry_after,
            result=result,
        )
        self.plan.add(scenario)
        warn_unknown(scenario, self.registry)
        return scenario

    def add(self, scenario: Scenario) -> Scenario:
        """Add a ready-made scenario."""
        self.plan.add(scenario)
        warn_unknown(scenario, self.registry)
        return scenario

    def clear(self) -> None:
        """Remove every scenario and forget the recorded injections."""
        for scenario in self.plan.scenarios:
            self.plan.remove(scenario.name)
        self.plan.injections.clear()

    @property
    def injections(self) -> list[Injection]:
        """Every fault handed out so far, oldest first."""
        return list(self.plan.injections)

    def injected(self, dependency: str) -> int:
        """How many calls to `dependency` received a fault."""
        return sum(1 for i in self.plan.injections if i.dependency == dependency)

    def headers(self, codec: HeaderCodec, *, audience: str | Iterable[str] | None = None) -> dict[str, str]:
        """Signed headers carrying these scenarios and this identity, for calling a real service.

        `audience`: the services that may honour them (the codec's `audience` when not given).
        """
        return {
            codec.header: codec.sign(self.plan.scenarios, identity=self.plan.identity, audience=audience)
        }

    def __enter__(self) -> Fit:
        if self._stack is not None:
            raise RuntimeError("this Fit block is already active")
        stack = ExitStack()
        stack.enter_context(bind(self.plan))
        self._stack = stack
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
