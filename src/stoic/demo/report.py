"""The demo's report: plays, failures, fallbacks, latency, and what every chaos event did to SPS."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .drill import ChaosEvent
from .viewers import DailyPattern, PlayRecord

BUCKET = 1.0  # seconds per SPS point
#: answers from the same service somewhere else, as opposed to a degraded answer
FAILOVERS = frozenset({"other-zone", "other-region", "other-region-edge"})


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of `values` by nearest rank; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def fallback_counts(records: Iterable[PlayRecord]) -> Counter[str]:
    """How often each degraded answer was used: ``"personalisation: snapshot" -> 12``."""
    counts: Counter[str] = Counter()
    for rec in records:
        for service, source in rec.sources.items():
            if source != "primary":
                counts[f"{service}: {source}"] += 1
    return counts


@dataclass
class EventImpact:
    """What one chaos event did to the plays that started while it lasted."""

    event: ChaosEvent
    start: float
    end: float
    plays: int
    failed: int
    sps: float
    expected_sps: float
    degraded: int  # plays answered with at least one fallback
    p99_ms: float
    fallbacks: dict[str, int] = field(default_factory=dict)

    @property
    def sps_ratio(self) -> float:
        """Measured SPS over expected (1.0 = as the daily pattern predicts)."""
        return self.sps / self.expected_sps if self.expected_sps > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            **self.event.to_dict(),
            "window": [round(self.start, 2), round(self.end, 2)],
            "plays": self.plays,
            "failed": self.failed,
            "sps": round(self.sps, 2),
            "expected_sps": round(self.expected_sps, 2),
            "sps_ratio": round(self.sps_ratio, 3),
            "degraded": self.degraded,
            "p99_ms": round(self.p99_ms, 1),
            "fallbacks": self.fallbacks,
        }


@dataclass
class Report:
    """Everything a run measured; `summary()` for people, `to_dict()` for tools, `chart()` for eyes."""

    records: list[PlayRecord]
    events: list[ChaosEvent]
    pattern: DailyPattern
    duration: float
    seed: int
    alerts: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    startup_seconds: float = 0.0
    started_at: float = 0.0  # epoch seconds when the load started: alerts are stamped with it
    errors: dict[str, int] = field(default_factory=dict)  # what a part outside the plays raised, counted

    # -- numbers -----------------------------------------------------------------------------------

    @property
    def plays(self) -> int:
        """Every play that was started."""
        return len(self.records)

    @property
    def failed(self) -> list[PlayRecord]:
        """User-visible failures: plays that never started."""
        return [r for r in self.records if not r.ok]

    def latencies_ms(self, records: Iterable[PlayRecord] | None = None) -> list[float]:
        """Play latencies (ms) of the successful plays among `records` (default: all)."""
        return [r.latency * 1000 for r in (self.records if records is None else records) if r.ok]

    @property
    def fallbacks(self) -> Counter[str]:
        """How often each non-primary answer was used, over the whole run."""
        return fallback_counts(self.records)

    @property
    def rebuffer_ratio(self) -> float:
        """Frozen time over viewing plus frozen time, over every play."""
        watched = sum(r.watched for r in self.records)
        stalled = sum(r.rebuffer for r in self.records)
        return stalled / (watched + stalled) if watched + stalled > 0 else 0.0

    def window(self, start: float, end: float) -> list[PlayRecord]:
        """Plays that started in [start, end) seconds into the run."""
        return [r for r in self.records if start <= r.at < end]

    def impact(self, event: ChaosEvent) -> EventImpact:
        """What `event` did to the plays that started while it lasted."""
        end = event.ends if event.ends is not None else self.duration
        end = max(min(end, self.duration), event.at + BUCKET)
        plays = self.window(event.at, end)
        span = end - event.at
        expected = _mean(self.pattern.rate(event.at + span * i / 20) for i in range(21))
        ok = [r for r in plays if r.ok]
        return EventImpact(
            event,
            event.at,
            end,
            len(plays),
            len(plays) - len(ok),
            len(ok) / span,
            expected,
            sum(1 for r in ok if any(s != "primary" for s in r.sources.values())),
            percentile(self.latencies_ms(ok), 0.99),
            dict(fallback_counts(plays).most_common(6)),
        )

    def series(self) -> dict[str, list[float]]:
        """Per-second points: t, ok starts, failed starts, expected, share answered by a fallback, p99 ms."""
        n = max(1, math.ceil(self.duration / BUCKET))
        ok = [0.0] * n
        bad = [0.0] * n
        degraded = [0.0] * n
        lat: list[list[float]] = [[] for _ in range(n)]
        for r in self.records:
            i = min(n - 1, int(r.at / BUCKET))
            if r.ok:
                ok[i] += 1
                lat[i].append(r.latency * 1000)
                if any(s != "primary" for s in r.sources.values()):
                    degraded[i] += 1
            else:
                bad[i] += 1
        t = [i * BUCKET for i in range(n)]
        return {
            "t": t,
            "sps": [v / BUCKET for v in ok],
            "failed": [v / BUCKET for v in bad],
            "expected": [self.pattern.rate(x + BUCKET / 2) for x in t],
            "degraded_share": [d / o if o else 0.0 for d, o in zip(degraded, ok, strict=True)],
            "p99_ms": [percentile(v, 0.99) if v else float("nan") for v in lat],
        }

    # -- words -------------------------------------------------------------------------------------

    def summary(self) -> str:
        """The report as text, for people."""
        lat = self.latencies_ms()
        startups = [r.startup * 1000 for r in self.records if r.ok]
        ok = self.plays - len(self.failed)
        lines = [
            f"Stoic demo: {self.duration:.0f} s run standing for 24 h, seed {self.seed}",
            f"plays: {self.plays} started, {ok} ok, {len(self.failed)} user-visible failures"
            f" ({_pct(len(self.failed), self.plays)})",
            f"play latency: p50 {percentile(lat, 0.5):.0f} ms, p99 {percentile(lat, 0.99):.0f} ms;"
            f" time to first frame p50 {percentile(startups, 0.5):.0f} ms",
            f"rebuffering: {self.rebuffer_ratio:.2%} of viewing time"
            f" ({sum(r.cdn_failovers for r in self.records)} segment fetches moved to another CDN)",
        ]
        degraded = sum(1 for r in self.records if r.ok and any(s != "primary" for s in r.sources.values()))
        lines.append(f"plays helped by a failover or a fallback: {degraded} ({_pct(degraded, ok)})")
        if self.fallbacks:
            lines.append("fallbacks that answered (failover: the service elsewhere; degraded: a stand-in):")
            lines += [
                f"  {name:<36} {count:>6}  {'failover' if name.split(': ')[-1] in FAILOVERS else 'degraded'}"
                for name, count in self.fallbacks.most_common()
            ]
        if self.failed:
            reasons = Counter(f"{r.status}: {r.error[:90]}" for r in self.failed)
            lines.append("failures:")
            lines += [f"  {count:>5} x {why}" for why, count in reasons.most_common(5)]
        if self.events:
            lines.append("chaos events:")
        for event in self.events:
            imp = self.impact(event)
            span = f"{imp.end - imp.start:.0f}s" if event.ends is not None else "until the end"
            lines.append(
                f"  {self._stamp(event.at)}{event.description}"
                f" -> {event.outcome}" + (f" ({event.reason})" if event.reason else "")
            )
            if event.victims:
                lines.append(f"      took down: {', '.join(event.victims)}")
            lines += [f"      then: {note}" for note in event.notes]
            top = ", ".join(f"{k} x{v}" for k, v in list(imp.fallbacks.items())[:4]) or "none"
            lines.append(
                f"      over {span}: {imp.plays} plays, {imp.failed} failed, SPS {imp.sps:.1f}"
                f" vs {imp.expected_sps:.1f} expected ({imp.sps_ratio:.0%}), p99 {imp.p99_ms:.0f} ms;"
                f" fallbacks: {top}"
            )
        if self.alerts:
            lines.append("alerts:")
            lines += [
                f"  {self._when(a)}[{a.get('severity', '')}] {a.get('summary', '')} -> {a.get('team', '')}"
                for a in self.alerts[:8]
            ]
        if self.skipped:
            lines.append(f"note: {self.skipped} arrivals not started (viewer sessions at their cap)")
        lines += [f"error: {what} (x{count})" for what, count in self.errors.items()]
        return "\n".join(lines)

    def _when(self, alert: dict[str, Any]) -> str:
        """An alert's first bucket, stamped as chaos events are ("" without the run's start)."""
        starts = alert.get("starts_at")
        if not self.started_at or not isinstance(starts, int | float):
            return ""
        return self._stamp(starts - self.started_at)

    def _stamp(self, at: float) -> str:
        """`[ 81.3s, 21:57] `: seconds into the run and the hour of the compressed day."""
        hour = self.pattern.hour(at)
        return f"[{at:5.1f}s, {int(hour):02d}:{int(hour % 1 * 60):02d}] "

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, for tools."""
        lat = self.latencies_ms()
        return {
            "duration": self.duration,
            "seed": self.seed,
            "plays": self.plays,
            "failed": len(self.failed),
            "latency_ms": {"p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99)},
            "rebuffer_ratio": self.rebuffer_ratio,
            "fallbacks": dict(self.fallbacks.most_common()),
            "events": [self.impact(e).to_dict() for e in self.events],
            "alerts": self.alerts,
            "skipped": self.skipped,
            "startup_seconds": self.startup_seconds,
            "started_at": self.started_at,
            "errors": self.errors,
        }

    # -- files -------------------------------------------------------------------------------------

    def write(self, out: Path) -> dict[str, Path]:
        """Write report.txt, report.json, plays.jsonl and sps.png into `out`."""
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "summary": out / "report.txt",
            "json": out / "report.json",
            "plays": out / "plays.jsonl",
            "chart": out / "sps.png",
        }
        paths["summary"].write_text(self.summary() + "\n")
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1, default=str))
        with paths["plays"].open("w") as f:
            for r in self.records:
                f.write(json.dumps(r.to_dict()) + "\n")
        self.chart(paths["chart"])
        return paths

    def chart(self, path: Path) -> Path:
        """SPS over the run with expected SPS, failures, fallback share, p99 latency and chaos events."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        s = self.series()
        fig, (ax1, ax2, ax3) = plt.subplots(
            3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 1.3]}
        )
        ax1.plot(s["t"], _smooth(s["sps"], 3), color="#1f77b4", lw=1.8, label="stream starts / s (3 s mean)")
        ax1.plot(s["t"], s["sps"], color="#1f77b4", lw=0.6, alpha=0.35)
        ax1.plot(s["t"], s["expected"], color="#555", lw=1, ls="--", label="expected (daily pattern)")
        if any(s["failed"]):
            ax1.bar(
                s["t"], s["failed"], width=BUCKET, color="#d62728", label="failed starts / s", align="edge"
            )
        ax1.set_ylabel("SPS")
        ax1.set_title(
            f"Stoic demo: {self.plays} plays, {len(self.failed)} failed, "
            f"{len(self.events)} chaos events (seed {self.seed})"
        )
        ax2.fill_between(
            s["t"], [v * 100 for v in s["degraded_share"]], step="post", color="#ff7f0e", alpha=0.6
        )
        ax2.set_ylabel("% answered\nby fallback")
        ax2.set_ylim(0, 100)
        ax3.plot(s["t"], s["p99_ms"], color="#9467bd", lw=1)
        ax3.set_ylabel("p99 play\nlatency ms")
        ax3.set_xlabel("seconds into the run (the run stands for 24 h)")
        colours = {
            "chaos-monkey": "#8c564b",
            "latency-monkey": "#e377c2",
            "chaos-gorilla": "#bcbd22",
            "chaos-kong": "#d62728",
            "fit": "#17becf",
        }
        top = max([*s["sps"], *s["expected"], 1.0])
        for event in self.events:
            end = event.ends if event.ends is not None else self.duration
            colour = colours.get(event.kind, "#999")
            for ax in (ax1, ax2, ax3):
                ax.axvspan(event.at, max(end, event.at + 0.5), color=colour, alpha=0.15, lw=0)
                ax.axvline(event.at, color=colour, lw=1)
            label = f"{event.kind}\n{event.target}"
            ax1.text(event.at + 0.3, top * 1.02, label, fontsize=7, va="bottom", color=colour)
        ax1.set_ylim(0, top * 1.25)
        handles, labels = ax1.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
        for ax in (ax1, ax2, ax3):
            ax.grid(alpha=0.3)
        ax3.set_xlim(0, self.duration)
        ticks = [t for t in ax3.get_xticks() if 0 <= t <= self.duration]
        hours = [self.pattern.hour(t) for t in ticks]
        clock = ax1.secondary_xaxis("top")
        clock.set_xticks(ticks)
        clock.set_xticklabels([f"{int(h):02d}:{int(h % 1 * 60):02d}" for h in hours], fontsize=7)
        fig.tight_layout(rect=(0, 0.035, 1, 1))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "0%"


def _smooth(values: Sequence[float], width: int) -> list[float]:
    """Centred moving mean (no lag, so dips line up with the events that caused them)."""
    half = width // 2
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out
