"""Matplotlib charts rendered to inline SVG strings (no pyplot, no global backend state)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

INK, EXPECTED, BAND, ALERT, CHAOS = "#1f2937", "#2563eb", "#bfdbfe", "#dc2626", "#d97706"


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: the page is HTML
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _dates(ts: Sequence[float]) -> list[float]:
    return [_date(t) for t in ts]


def _date(t: float) -> float:
    """Matplotlib's date number for unix time `t` (so the axis can format dates)."""
    return float(date2num(datetime.fromtimestamp(t, UTC)))  # type: ignore[no-untyped-call]


def _axes_time(ax: Axes) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def indicator_chart(
    title: str,
    t: Sequence[float],
    value: Sequence[float | None],
    expected: Sequence[float | None],
    bound: Sequence[float | None],
    *,
    alerts: Sequence[tuple[float, float]] = (),
    chaos: Sequence[float] = (),
    unit: str = "",
) -> str:
    """Observed vs expected with the alert band, alert spans shaded red, chaos events marked."""
    fig = Figure(figsize=(9.5, 2.6), dpi=96)
    ax = fig.add_subplot()
    x = _dates(t)
    nan = float("nan")
    ax.plot(x, [nan if v is None else v for v in value], color=INK, lw=0.9, label="observed")
    ax.plot(x, [nan if v is None else v for v in expected], color=EXPECTED, lw=1.1, ls="--", label="expected")
    lo = [nan if b is None else b for b in bound]
    hi = [nan if e is None else e for e in expected]
    ax.fill_between(x, lo, hi, color=BAND, alpha=0.5, lw=0, label="normal band")
    for start, end in alerts:
        ax.axvspan(_date(start), _date(end), color=ALERT, alpha=0.15)
    for at in chaos:
        ax.axvline(_date(at), color=CHAOS, lw=0.8, ls=":")
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="upper right", ncols=3, frameon=False)
    _axes_time(ax)
    return _svg(fig)


def bar_chart(
    title: str, labels: Sequence[str], stacks: Mapping[str, Sequence[float]], *, unit: str = ""
) -> str:
    """Horizontal stacked bars, one bar per label, one colour per stack."""
    fig = Figure(figsize=(9.5, 0.6 + 0.35 * max(1, len(labels))), dpi=96)
    ax = fig.add_subplot()
    left = [0.0] * len(labels)
    for name, values in stacks.items():
        ax.barh(list(labels), list(values), left=left, label=name)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel(unit, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.invert_yaxis()
    if len(stacks) > 1:
        ax.legend(fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.25)
    return _svg(fig)
