"""Stop conditions: chaos halts while a named alert fires, the error budget burns too fast, or too little
of it is left (as AWS FIS stops an experiment on a CloudWatch alarm).

`StopConditions` holds the thresholds and a `StopSignals` source that reads the live values:
`PrometheusSignals` asks a Prometheus server (its firing alerts and two PromQL expressions); any object
with the three methods works, e.g. one reading `stoic.signals` in the same process. A source that
cannot be read counts as "stop": chaos never runs blind.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Iterable
from typing import Protocol

from ._errors import ChaosConfigError


class StopSignals(Protocol):
    """Where stop conditions read the live state of the system."""

    def firing_alerts(self) -> Collection[str]:
        """The names of the alerts firing now."""
        ...

    def burn_rate(self) -> float | None:
        """The error-budget burn rate now (1 = spending exactly the budget); None: not measured."""
        ...

    def error_budget(self) -> float | None:
        """The share of the error budget left, in [0, 1]; None: not measured."""
        ...


class StopConditions:
    """Halts chaos while any condition holds. Every threshold is optional; None switches it off.

    - `alerts`: alert names; chaos halts while any of them fires
    - `max_burn_rate`: halts while the burn rate is above it (e.g. 14.4: a 30-day budget gone in 2 days)
    - `min_error_budget`: chaos may run only while at least this share of the budget is left (0..1)

    >>> StopConditions(source, alerts=["StreamStartsDrop"], max_burn_rate=14.4, min_error_budget=0.25)
    """

    def __init__(
        self,
        source: StopSignals,
        *,
        alerts: Iterable[str] = (),
        max_burn_rate: float | None = None,
        min_error_budget: float | None = None,
    ) -> None:
        names = [alerts] if isinstance(alerts, str) else list(alerts)
        if not all(isinstance(a, str) and a for a in names):
            raise ChaosConfigError(f"stop.alerts must be a list of non-empty alert names; got {alerts!r}")
        if max_burn_rate is not None and (not _finite(max_burn_rate) or max_burn_rate <= 0):
            raise ChaosConfigError(f"stop.max_burn_rate must be a number > 0 or None; got {max_burn_rate!r}")
        if min_error_budget is not None and (not _finite(min_error_budget) or not 0 <= min_error_budget <= 1):
            raise ChaosConfigError(
                f"stop.min_error_budget must be a share in [0, 1] or None; got {min_error_budget!r}"
            )
        self.source = source
        self.alerts = tuple(dict.fromkeys(names))
        self.max_burn_rate = max_burn_rate
        self.min_error_budget = min_error_budget

    def reason(self) -> str:
        """Why chaos must halt now ("" when it may run); a source that fails counts as a halt."""
        try:
            if self.alerts:
                firing = set(self.source.firing_alerts())
                hit = [a for a in self.alerts if a in firing]
                if hit:
                    return f"stop condition: alert {hit[0]} is firing"
            if self.max_burn_rate is not None:
                burn = self.source.burn_rate()
                if burn is None:
                    return "stop condition: the burn rate cannot be read (no data)"
                if burn > self.max_burn_rate:
                    return (
                        f"stop condition: error budget burning at {burn:.3g}x > max_burn_rate "
                        f"{self.max_burn_rate:g}"
                    )
            if self.min_error_budget is not None:
                left = self.source.error_budget()
                if left is None:
                    return "stop condition: the error budget cannot be read (no data)"
                if left < self.min_error_budget:
                    return (
                        f"stop condition: {left:.1%} of the error budget left < min_error_budget "
                        f"{self.min_error_budget:.0%}"
                    )
        except Exception as exc:  # cannot tell: assume the worst, like an outage check
            return f"stop condition could not be read: {exc!r}"
        return ""

    def describe(self) -> str:
        parts = [f"alert {a} fires" for a in self.alerts]
        if self.max_burn_rate is not None:
            parts.append(f"burn rate > {self.max_burn_rate:g}")
        if self.min_error_budget is not None:
            parts.append(f"error budget < {self.min_error_budget:.0%}")
        return " or ".join(parts) or "none"

    def __repr__(self) -> str:
        return f"StopConditions({self.describe()})"


class PrometheusSignals:
    """Reads stop signals from a Prometheus server over its HTTP API.

    Firing alerts come from ``/api/v1/alerts`` (alerting rules in state ``firing``); the burn rate and
    the error budget left are PromQL expressions answered by ``/api/v1/query`` (the largest value of the
    answer counts for the burn rate, the smallest for the budget: the worst SLO decides).
    """

    def __init__(
        self,
        url: str,
        *,
        burn_rate: str | None = None,
        error_budget: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ChaosConfigError(f"stop.prometheus must be an http(s) URL; got {url!r}")
        if not _finite(timeout) or timeout <= 0:
            raise ChaosConfigError(f"stop timeout must be seconds > 0; got {timeout!r}")
        self.url = url.rstrip("/")
        self.burn_rate_query = burn_rate
        self.error_budget_query = error_budget
        self.timeout = timeout

    def _get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=self.timeout) as resp:
            body = json.loads(resp.read(4 * 1024 * 1024))
        if not isinstance(body, dict) or body.get("status") != "success":
            raise ValueError(f"Prometheus at {self.url} answered {str(body)[:200]}")
        return body.get("data")

    def firing_alerts(self) -> Collection[str]:
        data = self._get("/api/v1/alerts")
        alerts = data.get("alerts", []) if isinstance(data, dict) else []
        return {
            str(a.get("labels", {}).get("alertname", ""))
            for a in alerts
            if isinstance(a, dict) and a.get("state") == "firing"
        }

    def _query(self, expr: str | None, worst: str) -> float | None:
        if expr is None:
            return None
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        values: list[float] = []
        if isinstance(data, dict):
            result = data.get("result")
            if data.get("resultType") == "scalar" and isinstance(result, list):
                values.append(float(result[1]))
            elif isinstance(result, list):
                values += [float(r["value"][1]) for r in result if isinstance(r, dict) and "value" in r]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
        return max(values) if worst == "max" else min(values)

    def burn_rate(self) -> float | None:
        return self._query(self.burn_rate_query, "max")

    def error_budget(self) -> float | None:
        return self._query(self.error_budget_query, "min")

    def __repr__(self) -> str:
        return f"PrometheusSignals({self.url!r})"


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


__all__ = ["PrometheusSignals", "StopConditions", "StopSignals"]
