"""Conformity Monkey: finds instances and dependencies that break the rules, and tells their owners."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ._monkey import Action, RunContext, check_duration
from .fleet import Fleet
from .notify import LogNotifier, Notifier
from .safety import BlastRadius
from .schedule import Schedule

if TYPE_CHECKING:
    from .audit import AuditEntry, AuditLog

log = logging.getLogger("stoic.chaos.conformity")

#: who hears about findings nobody owns
UNOWNED = "unowned"


@dataclass(frozen=True)
class Finding:
    """One broken rule: which rule, about what, whose problem, in plain words."""

    rule: str
    subject: str
    owner: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    """What the rules look at: the fleet, dependency snapshots, the app -> owner book, the
    dependencies whose fallback a passed experiment verified (dependency -> its audit entry), and
    the outbound connections services made outside a guarded call (each a mapping with `app`,
    `address` and `site`, as `stoic.guard.review` finds them)."""

    fleet: Fleet
    dependencies: Sequence[Mapping[str, Any]]
    owners: Mapping[str, str]
    verified: Mapping[str, AuditEntry] = field(default_factory=dict)
    unguarded: Sequence[Mapping[str, Any]] = ()

    def owner_of(self, app: str) -> str | None:
        if self.owners.get(app):
            return self.owners[app]
        found = {getattr(m, "owner", None) for m in self.fleet.select(app=app)} - {None, ""}
        return sorted(found)[0] if found else None  # type: ignore[type-var]


Rule = Callable[[Facts], Iterable[Finding]]


def has_fallback(facts: Facts) -> Iterable[Finding]:
    """Every guarded dependency has at least one fallback."""
    for dep in facts.dependencies:
        if not dep.get("has_fallback"):
            yield Finding(
                "has_fallback",
                str(dep.get("name")),
                str(dep.get("owner") or UNOWNED),
                f"dependency {dep.get('name')!r} has no fallback: when it fails, its callers fail",
            )


def fallback_verified(facts: Facts) -> Iterable[Finding]:
    """Every fallback has held once under a passed experiment (read from the audit log)."""
    for dep in facts.dependencies:
        name = str(dep.get("name"))
        if dep.get("has_fallback") and name not in facts.verified:
            yield Finding(
                "fallback_verified",
                name,
                str(dep.get("owner") or UNOWNED),
                f"dependency {name!r} has a fallback no experiment has verified yet: "
                "see `stoic chaos plan` for the experiment to run",
            )


def verified_lines(facts: Facts) -> list[str]:
    """``fallback verified`` lines for the dependencies whose fallback a passed experiment proved."""
    return [
        f"[has_fallback] {name}: fallback verified by experiment {entry.target} "
        f"(passed {entry.when:%Y-%m-%d %H:%M} UTC)"
        for name, entry in sorted(facts.verified.items())
        if any(str(d.get("name")) == name and d.get("has_fallback") for d in facts.dependencies)
    ]


def calls_guarded(facts: Facts) -> Iterable[Finding]:
    """Every outbound connection is made inside a guarded call: a service whose calls are not
    wrapped does not pass review. One finding per call site, to the app's owner."""
    seen: set[tuple[str, str]] = set()
    for found in facts.unguarded:
        app, site = str(found.get("app", "")), str(found.get("site", "unknown"))
        if (app, site) in seen:
            continue
        seen.add((app, site))
        yield Finding(
            "calls_guarded",
            f"{app}: {site}",
            facts.owner_of(app) or UNOWNED,
            f"{app} connects to {found.get('address')} outside a guarded call, from {site}",
        )


def runs_in_zones(min_zones: int = 2) -> Rule:
    """Every app runs alive instances in at least `min_zones` zones."""
    if min_zones < 1:
        raise ValueError(f"min_zones must be >= 1; got {min_zones!r}")

    def rule(facts: Facts) -> Iterable[Finding]:
        for app, members in facts.fleet.by_app().items():
            zones = members.alive().zones
            if len(zones) < min_zones:
                yield Finding(
                    f"runs_in_{min_zones}_zones",
                    app,
                    facts.owner_of(app) or UNOWNED,
                    f"app {app!r} runs in {len(zones)} zone(s) {zones}; a zone outage would take it down "
                    f"(needs >= {min_zones})",
                )

    rule.__name__ = f"runs_in_{min_zones}_zones"
    return rule


def has_owner(facts: Facts) -> Iterable[Finding]:
    """Every app and every dependency has an owner to page."""
    for app in facts.fleet.apps:
        if not facts.owner_of(app):
            yield Finding(
                "has_owner", app, UNOWNED, f"app {app!r} has no owner: nobody would be told it broke"
            )
    for dep in facts.dependencies:
        if not dep.get("owner"):
            yield Finding(
                "has_owner", str(dep.get("name")), UNOWNED, f"dependency {dep.get('name')!r} has no owner"
            )


DEFAULT_RULES: tuple[Rule, ...] = (has_fallback, runs_in_zones(2), has_owner, calls_guarded)


def guard_snapshots() -> list[dict[str, Any]]:
    """This process's guarded dependencies (``stoic.guard.registry.snapshot()``)."""
    from stoic.guard import registry

    return list(registry.snapshot())


class ConformityMonkey:
    """Checks `rules` at most every `every` chaos-clock seconds and sends each owner their findings.

    `dependencies` returns dependency snapshots (default: this process's `stoic.guard` registry);
    `unguarded` returns the connections services made outside a guarded call (mappings with
    `app`, `address`, `site`; e.g. the `unguarded` lists of the demo services' `/guard` endpoints,
    which each run a `stoic.guard.review.Review`); `owners` maps app -> owner (instances may also
    carry an owner).
    """

    name = "conformity-monkey"

    def __init__(
        self,
        rules: Sequence[Rule] = DEFAULT_RULES,
        *,
        notifier: Notifier | None = None,
        dependencies: Callable[[], Sequence[Mapping[str, Any]]] = guard_snapshots,
        unguarded: Callable[[], Sequence[Mapping[str, Any]]] = tuple,
        owners: Mapping[str, str] | None = None,
        every: float = 86400.0,
        schedule: Schedule | None = None,
    ) -> None:
        check_duration(every, "conformity.every", allow_none=False)
        self.rules = tuple(rules)
        self.notifier: Notifier = notifier or LogNotifier()
        self.dependencies = dependencies
        self.unguarded = unguarded
        self.owners = dict(owners or {})
        self.every = every
        self.schedule = schedule
        self.limits: BlastRadius | None = None
        self._last: float | None = None
        self.undelivered: dict[str, str] = {}  # owner -> why the latest report did not reach them

    def facts(self, fleet: Fleet, audit: AuditLog | None = None) -> Facts:
        """What the rules see now; with `audit`, the fallbacks passed experiments verified."""
        verified: Mapping[str, AuditEntry] = {}
        if audit is not None:
            from .experiment import verified_fallbacks

            verified = verified_fallbacks(audit)
        return Facts(fleet, list(self.dependencies()), self.owners, verified, list(self.unguarded()))

    def check(self, fleet: Fleet, audit: AuditLog | None = None) -> list[Finding]:
        """Run every rule now (`audit`: where passed experiments are read from)."""
        facts = self.facts(fleet, audit)
        return [f for rule in self.rules for f in rule(facts)]

    def report(self, findings: Sequence[Finding]) -> dict[str, str]:
        """Send each owner their findings; returns the owners that could not be told, with why.

        A failing notifier never stops the others (nor the army): the failure is logged and returned.
        """
        by_owner: dict[str, list[Finding]] = {}
        for f in findings:
            by_owner.setdefault(f.owner, []).append(f)
        undelivered: dict[str, str] = {}
        for owner in sorted(by_owner):
            try:
                self.notifier.notify(owner, by_owner[owner])
            except Exception as exc:
                log.warning("could not tell %s about %d finding(s): %r", owner, len(by_owner[owner]), exc)
                undelivered[owner] = repr(exc)
        self.undelivered = undelivered
        return undelivered

    def plan(self, ctx: RunContext) -> Sequence[Action]:
        if self._last is not None and ctx.timestamp - self._last < self.every:
            return []
        self._last = ctx.timestamp
        findings = tuple(self.check(ctx.fleet, ctx.audit))
        return [Action(self.name, "conformity", f"{len(findings)} finding(s)", findings=findings)]

    def apply(self, action: Action) -> None:
        self.report(action.findings)

    def __repr__(self) -> str:
        return f"ConformityMonkey(rules={[getattr(r, '__name__', r) for r in self.rules]})"


__all__ = [
    "DEFAULT_RULES",
    "UNOWNED",
    "ConformityMonkey",
    "Facts",
    "Finding",
    "Rule",
    "fallback_verified",
    "guard_snapshots",
    "has_fallback",
    "has_owner",
    "runs_in_zones",
    "verified_lines",
]
