"""The Simian Army: keep processes running, then break them on purpose, inside explicit safety rails.

- `Supervisor`, `Instance`, `Fleet`: local processes labelled app / region / zone.
- Targets: `ProcessTarget` (a supervisor's processes), `KubernetesTarget` (pods; ``stoic[k8s]``).
- Monkeys: `ChaosMonkey`, `LatencyMonkey`, `ChaosGorilla`, `ChaosKong`, `ConformityMonkey`.
- Rails: `Schedule`, `BlastRadius`, `KillSwitch`, outage checks, leashed mode, `AuditLog`.
- `SimianArmy` runs the monkeys; `install()` serves the fault board to a process.
- `KongDrill`, `KongSchedule`: region evacuations judged like experiments, run on a `Cadence`.
- `Experiment`: a fault for a share of requests, judged against a control cohort, ending in a verdict;
  `StopConditions` halt every monkey and experiment; `plan()` suggests one experiment per dependency.
"""

from ._errors import AuditError, ChaosConfigError
from ._monkey import Action, Monkey, RunContext
from ._spawn import free_port
from .army import RunReport, SimianArmy
from .audit import OUTCOMES, AuditEntry, AuditLog
from .board import BOARD_ENV, BoardInjector, FaultBoard, FaultRule, install, uninstall
from .chaos_monkey import AppSettings, ChaosMonkey
from .clock import Clock, CompressedClock, SystemClock
from .conformity import (
    DEFAULT_RULES,
    ConformityMonkey,
    Finding,
    Rule,
    calls_guarded,
    fallback_verified,
    has_fallback,
    has_owner,
    runs_in_zones,
)
from .experiment import VERDICTS, Experiment, Hypothesis, KpiCheck, Verdict, verified_fallbacks
from .fleet import GROUPINGS, Fleet, Grouping, Member, group_key
from .instance import Instance
from .kong_drill import KONG, KongDrill, KongEntry, KongSchedule, evacuation
from .latency_monkey import LatencyMonkey
from .notify import Inbox, LogNotifier, Notifier, WebhookNotifier
from .outages import ChaosGorilla, ChaosKong
from .plan import PlannedExperiment, plan
from .safety import BlastRadius, KillSwitch, OutageCheck, open_breakers_outage, url_outage
from .schedule import Cadence, Schedule
from .stop import PrometheusSignals, StopConditions, StopSignals
from .supervisor import Supervisor
from .targets import ProcessTarget, Target


def __getattr__(name: str) -> object:
    # the Kubernetes target (stoic[k8s]) loads only when asked for; kept out of __all__ so that
    # `from stoic.chaos import *` works without the extra
    if name in ("KubernetesTarget", "Pod"):
        from . import kubernetes

        return getattr(kubernetes, name)
    raise AttributeError(f"module 'stoic.chaos' has no attribute {name!r}")


__all__ = [
    "BOARD_ENV",
    "DEFAULT_RULES",
    "GROUPINGS",
    "KONG",
    "OUTCOMES",
    "VERDICTS",
    "Action",
    "AppSettings",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "BlastRadius",
    "BoardInjector",
    "Cadence",
    "ChaosConfigError",
    "ChaosGorilla",
    "ChaosKong",
    "ChaosMonkey",
    "Clock",
    "CompressedClock",
    "ConformityMonkey",
    "Experiment",
    "FaultBoard",
    "FaultRule",
    "Finding",
    "Fleet",
    "Grouping",
    "Hypothesis",
    "Inbox",
    "Instance",
    "KillSwitch",
    "KongDrill",
    "KongEntry",
    "KongSchedule",
    "KpiCheck",
    "LatencyMonkey",
    "LogNotifier",
    "Member",
    "Monkey",
    "Notifier",
    "OutageCheck",
    "PlannedExperiment",
    "ProcessTarget",
    "PrometheusSignals",
    "Rule",
    "RunContext",
    "RunReport",
    "Schedule",
    "SimianArmy",
    "StopConditions",
    "StopSignals",
    "Supervisor",
    "SystemClock",
    "Target",
    "Verdict",
    "WebhookNotifier",
    "calls_guarded",
    "evacuation",
    "fallback_verified",
    "free_port",
    "group_key",
    "has_fallback",
    "has_owner",
    "install",
    "open_breakers_outage",
    "plan",
    "runs_in_zones",
    "uninstall",
    "url_outage",
    "verified_fallbacks",
]
