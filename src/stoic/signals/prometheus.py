"""A Prometheus server as a source: instant and range queries through its HTTP API (httpx).

Each result series becomes samples keyed by the labels the indicator declares; a result that
lacks a declared label, or gives NaN or an infinity, is reported and skipped, never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused the query; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Series:
    """One result series: its labels and its (time, value) points, oldest first."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class PrometheusSource:
    """Queries one Prometheus server at `url` (e.g. http://127.0.0.1:9090)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, object]:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"prometheus {self.url}: {type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"prometheus {self.url}{path}: answered {response.status_code} with a body that is not JSON"
            ) from None
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error", body) if isinstance(body, dict) else body
            raise PrometheusError(f"prometheus {self.url}{path}: {response.status_code}: {detail}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(f"prometheus {self.url}{path}: answer has no data object")
        return data

    def query(self, promql: str, at: float) -> list[Series]:
        """The instant query `promql` evaluated at epoch seconds `at` (one point per series)."""
        data = self._get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        if data.get("resultType") == "scalar":
            return [Series({}, _points([data.get("result")]))]
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"prometheus query {promql!r}: must give an instant vector or a scalar, "
                f"got {data.get('resultType')}"
            )
        return [_series(item, "value") for item in _results(data)]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """`promql` evaluated every `step` seconds from `start` to `end`, in as many requests as
        Prometheus's per-query point limit needs; points of one series are merged in order."""
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        chunk = step * (MAX_POINTS - 1)
        lo = start
        for _ in range(int((end - start) / chunk) + 2):  # bounded: one more than the chunks needed
            if lo > end:
                break
            hi = min(end, lo + chunk)
            data = self._get(
                "/api/v1/query_range",
                {"query": promql, "start": f"{lo:.3f}", "end": f"{hi:.3f}", "step": f"{step:g}"},
            )
            for item in _results(data):
                s = _series(item, "values")
                key = tuple(sorted(s.labels.items()))
                if key in merged:
                    merged[key].points.extend(s.points)
                else:
                    merged[key] = s
            lo = hi + step
        return list(merged.values())


def _results(data: dict[str, object]) -> list[dict[str, object]]:
    result = data.get("result")
    if not isinstance(result, list):
        raise PrometheusError("prometheus answer: data.result is not a list")
    return [r for r in result if isinstance(r, dict)]


def _series(item: dict[str, object], key: str) -> Series:
    metric = item.get("metric")
    labels = {str(k): str(v) for k, v in metric.items()} if isinstance(metric, dict) else {}
    raw = item.get(key)
    return Series(labels, _points([raw] if key == "value" else raw))


def _points(raw: object) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for pair in raw if isinstance(raw, list) else []:
        if isinstance(pair, list) and len(pair) == 2:
            try:
                t, v = float(pair[0]), float(pair[1])
            except (TypeError, ValueError):
                continue
            out.append((t, v) if math.isfinite(v) else (t, math.nan))  # the caller refuses NaN by name
    return out
