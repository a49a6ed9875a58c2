"""A timeline chart of the audit log: one row per monkey, one mark per decision, coloured by outcome."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

from .audit import AuditEntry

_COLOURS = {
    "terminated": "#d62728",
    "failed": "#7f7f7f",
    "skipped": "#ff7f0e",
    "leashed": "#9467bd",
    "injected": "#1f77b4",
    "finding": "#2ca02c",
    "paused": "#000000",
    "resumed": "#17becf",
    "started": "#bcbd22",
    "passed": "#2ca02c",
    "aborted": "#e377c2",
    "inconclusive": "#c7c7c7",
}


def timeline(entries: Sequence[AuditEntry], path: str | os.PathLike[str], title: str = "Simian Army") -> None:
    """Draw `entries` (chaos-clock time on x) to a PNG at `path`. Needs matplotlib (``stoic[signals]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("the chart needs matplotlib: pip install 'stoic[signals]'") from exc
    monkeys = sorted({e.monkey for e in entries})
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * max(len(monkeys), 1)))
    for outcome, colour in _COLOURS.items():
        pts = [e for e in entries if e.outcome == outcome]
        if pts:
            ax.scatter(
                [datetime.fromtimestamp(e.at, UTC) for e in pts],  # type: ignore[arg-type]
                [monkeys.index(e.monkey) for e in pts],
                c=colour,
                label=outcome,
                s=36,
                marker="x" if outcome in ("skipped", "leashed") else "o",
            )
    ax.set_yticks(range(len(monkeys)), monkeys)
    ax.set_ylim(-0.7, max(len(monkeys), 1) - 0.3)
    ax.set_xlabel("chaos clock (UTC)")
    ax.set_title(title)
    if entries:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["timeline"]
