"""stoic.demo: a small streaming platform that keeps starting streams while the Simian Army strikes.

>>> from stoic.demo import DemoOptions, run_demo
>>> report = run_demo(DemoOptions(duration=60, seed=7))     # doctest: +SKIP
>>> print(report.summary())                                  # doctest: +SKIP

Names are imported on first use, so a platform process (``python -m stoic.demo.serve``) loads only
what it serves, not the chaos drill, the load generator or the charts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .drill import ChaosEvent, Drill, Strike, default_strikes
    from .platform import Platform
    from .report import Report
    from .run import DemoOptions, run_demo
    from .topology import PROCESSES, REGIONS, SERVICES, Topology
    from .viewers import DailyPattern, PlayRecord, Viewers

_HOME = {
    "ChaosEvent": "drill",
    "Drill": "drill",
    "Strike": "drill",
    "default_strikes": "drill",
    "Platform": "platform",
    "Report": "report",
    "DemoOptions": "run",
    "run_demo": "run",
    "PROCESSES": "topology",
    "REGIONS": "topology",
    "SERVICES": "topology",
    "Topology": "topology",
    "DailyPattern": "viewers",
    "PlayRecord": "viewers",
    "Viewers": "viewers",
}

__all__ = [
    "PROCESSES",
    "REGIONS",
    "SERVICES",
    "ChaosEvent",
    "DailyPattern",
    "DemoOptions",
    "Drill",
    "Platform",
    "PlayRecord",
    "Report",
    "Strike",
    "Topology",
    "Viewers",
    "default_strikes",
    "run_demo",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'stoic.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
