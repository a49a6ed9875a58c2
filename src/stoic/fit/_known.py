"""Warn when a scenario names a dependency the process does not have (a typo fails nothing)."""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from typing import Protocol

from stoic.fit._errors import FitWarning
from stoic.fit._scenario import ANY_DEPENDENCY, Scenario


class DependencyNames(Protocol):
    """What the check needs from a registry (`stoic.guard.Registry` has it)."""

    def names(self) -> list[str]: ...


def warn_unknown(scenario: Scenario, registry: DependencyNames | None) -> None:
    """Warn (`FitWarning`) for each of `scenario`'s dependencies that `registry` does not know.

    An empty registry says nothing: its dependencies may not be created yet. Either way the scenario
    stays in force, so a dependency that registers later is still failed.
    """
    if registry is None:
        return
    known = registry.names()
    if not known:
        return
    names = set(known)
    for name in scenario.dependencies:
        if name == ANY_DEPENDENCY or name in names:
            continue
        if any(c in name for c in "*?[") and any(fnmatch.fnmatchcase(k, name) for k in known):
            continue  # a glob that matches a known dependency
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
        else:
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            hint = f"known: {shown}"
        if "*" in name or "?" in name:
            hint += " (a glob matching none of them; globs are case-sensitive)"
        warnings.warn(
            f"dependencies: scenario {scenario.name!r} fails {name!r}, which no registered dependency is "
            f"called; {hint}",
            FitWarning,
            stacklevel=3,
        )
