"""Draw docs/detector.png: one generated series, the detector's expected value and band, evidence, score.

.venv/bin/python benchmarks/_detector_chart.py [FAMILY INDEX]
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _corpus import make_series
from stoic.signals import Detector

OUT = Path(__file__).resolve().parents[1] / "docs" / "detector.png"


def main() -> None:
    family, index = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) > 2 else ("level_shift", 1)
    series = make_series(family, index)
    detector = Detector(series.interval, direction="both")
    found = [detector.step(v, at) for at, v in zip(series.t, series.values, strict=True)]
    when = [datetime.fromtimestamp(t, UTC) for t in series.t]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(when, series.values, lw=0.6, color="#222", label="value")
    top.plot(when, [d.expected for d in found], lw=0.8, color="#1f6fb4", label="expected")
    top.fill_between(
        when,
        [d.lower if d.lower is not None else float("nan") for d in found],
        [d.upper if d.upper is not None else float("nan") for d in found],
        color="#1f6fb4",
        alpha=0.15,
        lw=0,
        label="band (a run of points outside it alerts)",
    )
    for start, end in series.anomalies:
        span = (datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
        for ax in (top, bottom):
            ax.axvspan(*span, color="#f5a623", alpha=0.3)
    for d, at in zip(found, when, strict=True):
        if d.started:
            top.axvline(at, color="#d0021b", lw=0.8)
    top.set_ylim(bottom=min(series.values) - 5, top=max(series.values) * 1.15)
    top.set_title(f"{series.name}: labelled anomalies shaded, alerts as red lines")
    top.legend(loc="upper left", fontsize=8, ncol=3)
    bottom.plot(when, [d.evidence for d in found], lw=0.7, color="#888", label="evidence")
    news = [(at, d.score) for d, at in zip(found, when, strict=True) if d.score > 0.0]
    bottom.scatter([a for a, _ in news], [s for _, s in news], s=12, color="#d0021b", label="score (news)")
    bottom.axhline(detector.threshold, color="#888", lw=0.6, ls="--")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("score")
    bottom.legend(loc="upper left", fontsize=8, ncol=2)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%a %d"))
    fig.tight_layout()
    fig.savefig(OUT, dpi=80)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
