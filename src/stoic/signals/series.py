"""Samples of declared indicators, checked at the edge and kept per label set until judged.

Every source (Prometheus, push ingest, a backfill file) hands `Sample`s to one `SeriesStore`.
A sample is refused, with an error naming its field and the allowed values, when its indicator
is not declared, its labels are not exactly the declared ones, its value does not fit the
indicator's kind, its time is outside the retention or ahead of now, its interval was already
judged (it arrived later than the allowed lateness), or it would open one label set more than
the indicator's `max_series`. A label set silent for `expire_after` is forgotten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stoic.signals import _validate
from stoic.signals.config import IndicatorSpec
from stoic.signals.ingest import IngestError

MAX_AHEAD = 60.0  # seconds a sample may be ahead of this host's clock
MAX_LABEL_VALUE = 200

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one indicator for one label set at epoch seconds `t`."""

    indicator: str
    labels: Labels
    t: float
    value: float


@dataclass(slots=True)
class Series:
    """One label set of one indicator: raw buckets not yet judged, and where judging stands."""

    spec: IndicatorSpec
    labels: Labels
    buckets: dict[int, list[float]] = field(default_factory=dict)  # index -> [sum, count]
    judged: int | None = None  # the last judged bucket index
    newest: int | None = None  # the newest bucket that received a sample
    arrived: float | None = None  # when (this host's clock) the last sample was taken
    state: object = None  # what the judge keeps for this series (detector, alerts)

    def index(self, t: float) -> int:
        return int(t // self.spec.interval)

    def take(self, index: int) -> float | None:
        """The mean of the samples of bucket `index` (None: no sample), removed from memory."""
        acc = self.buckets.pop(index, None)
        return None if acc is None else acc[0] / acc[1]


def labels_text(labels: Labels) -> str:
    """`{region="eu",status="5xx"}`, as Prometheus writes a label set ("" for none)."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else ""


def _refuse(field: str, detail: str) -> IngestError:
    """The error for a refused sample: the message starts with the field, as every edge's does."""
    return IngestError(field, f"{field}: {detail}")


def clock_text(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class SeriesStore:
    """The label sets of every declared indicator. Thread-safe.

    `retention` (seconds) is the oldest age a sample may have; `clock` gives now.
    """

    def __init__(
        self,
        specs: Sequence[IndicatorSpec],
        *,
        retention: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.retention = _validate.number("retention", retention, low=0.0, low_open=True)
        self.clock = clock
        self.lock = threading.RLock()
        self.series: dict[str, dict[Labels, Series]] = {s.name: {} for s in specs}
        self.refused = 0  # samples refused from pull sources (logged, never silent)

    # ---- checking one sample -------------------------------------------------------------
    def sample(
        self, path: str, indicator: object, labels: object, at: object, value: object, *, now: float
    ) -> Sample:
        """Check one raw sample; IngestError names `path`'s field at fault."""
        if not isinstance(indicator, str) or indicator not in self.specs:
            declared = ", ".join(sorted(self.specs))
            raise _refuse(f"{path}.name", f"must be a declared indicator ({declared}), got {indicator!r}")
        spec = self.specs[indicator]
        checked = self._labels(path, spec, labels)
        return Sample(indicator, checked, self._at(path, at, now), self._value(path, spec, value))

    def _labels(self, path: str, spec: IndicatorSpec, labels: object) -> Labels:
        if labels is None:
            labels = {}
        if not isinstance(labels, Mapping):
            raise _refuse(f"{path}.labels", f"must be an object of label values, got {labels!r}")
        declared = ", ".join(spec.labels) or "none"
        for k in labels:
            if k not in spec.labels:
                raise _refuse(f"{path}.labels.{k}", f"not a label of {spec.name}; declared: {declared}")
        out = []
        for k in spec.labels:
            v = labels.get(k)
            if not isinstance(v, str) or not v or len(v) > MAX_LABEL_VALUE:
                raise IngestError(
                    f"{path}.labels.{k}",
                    f"{path}.labels.{k}: required for {spec.name} (declared: {declared}), "
                    f"a string of 1..{MAX_LABEL_VALUE} characters, got {v!r}",
                )
            out.append((k, v))
        return tuple(out)

    def _at(self, path: str, at: object, now: float) -> float:
        try:
            t = _validate.epoch(f"{path}.at", at)
        except ValueError as exc:
            raise IngestError(f"{path}.at", str(exc)) from None
        if t > now + MAX_AHEAD:
            raise _refuse(
                f"{path}.at", f"at most {MAX_AHEAD:g} s ahead of now ({clock_text(now)}), got {clock_text(t)}"
            )
        if t < now - self.retention:
            raise IngestError(
                f"{path}.at",
                f"{path}.at: older than the retention ({self.retention / 86400:g} days, service.keep_days), "
                f"got {clock_text(t)}",
            )
        return t

    def _value(self, path: str, spec: IndicatorSpec, value: object) -> float:
        try:
            v = _validate.measurement(f"{path}.value", value)
        except ValueError as exc:
            raise IngestError(f"{path}.value", str(exc)) from None
        if spec.kind == "ratio" and not 0.0 <= v <= 1.0:
            raise _refuse(f"{path}.value", f"{spec.name} is a ratio, must be in 0..1, got {value!r}")
        if spec.kind in ("count", "latency") and v < 0.0:
            raise _refuse(f"{path}.value", f"{spec.name} is a {spec.kind}, cannot be negative, got {value!r}")
        return v

    # ---- keeping samples -------------------------------------------------------------------
    def add(
        self,
        samples: Sequence[Sample],
        paths: Sequence[str],
        *,
        all_or_nothing: bool = True,
        check_only: bool = False,
    ) -> list[IngestError]:
        """Keep `samples` (`paths[i]` names sample i in errors). With `all_or_nothing` the first
        refusal raises and nothing is kept; otherwise the good ones are kept and the refusals
        returned. `check_only` checks and keeps nothing."""
        refusals: list[IngestError] = []
        with self.lock:
            new: dict[str, set[Labels]] = {}
            keep: list[Sample] = []
            for sample, path in zip(samples, paths, strict=True):
                try:
                    self._admit(sample, path, new)
                except IngestError as exc:
                    if all_or_nothing:
                        raise
                    refusals.append(exc)
                    continue
                keep.append(sample)
            if check_only:
                return refusals
            now = self.clock()
            for s in keep:
                series = self.series[s.indicator].get(s.labels)
                if series is None:
                    series = self.series[s.indicator][s.labels] = Series(self.specs[s.indicator], s.labels)
                idx = series.index(s.t)
                acc = series.buckets.setdefault(idx, [0.0, 0])
                acc[0] += s.value
                acc[1] += 1
                if series.newest is None or idx > series.newest:
                    series.newest = idx
                series.arrived = now
        self.refused += len(refusals)
        return refusals

    def _admit(self, s: Sample, path: str, new: dict[str, set[Labels]]) -> None:
        spec = self.specs[s.indicator]
        series = self.series[s.indicator].get(s.labels)
        if series is None:
            pending = new.setdefault(s.indicator, set())
            if s.labels not in pending:
                if len(self.series[s.indicator]) + len(pending) >= spec.max_series:
                    raise _refuse(
                        f"{path}.labels",
                        f"{spec.name} already tracks {spec.max_series} label sets (max_series); "
                        f"{labels_text(s.labels)} would be one more",
                    )
                pending.add(s.labels)
            return
        if series.judged is not None and series.index(s.t) <= series.judged:
            judged_end = (series.judged + 1) * spec.interval
            raise _refuse(
                f"{path}.at",
                f"arrived later than the allowed lateness ({spec.lateness:g} s): {spec.name}"
                f"{labels_text(s.labels)} is judged up to {clock_text(judged_end)}, got {clock_text(s.t)}",
            )

    def expire(self, now: float) -> list[Series]:
        """Forget label sets no sample arrived for in their `expire_after` (this host's clock, so
        history sent late in a batch is not idle); returns them."""
        gone: list[Series] = []
        with self.lock:
            for name, per in self.series.items():
                spec = self.specs[name]
                for key, series in list(per.items()):
                    if series.arrived is not None and series.arrived <= now - spec.expire_after:
                        gone.append(per.pop(key))
        return gone
