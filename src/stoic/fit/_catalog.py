"""Catalog: scenarios switched on for live traffic, in this process or fleet-wide through the fault board."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stoic.fit._board import BOARD_ENV, BoardWatch, change_section, kill_switch_path
from stoic.fit._errors import InvalidScenario
from stoic.fit._identity import RequestIdentity
from stoic.fit._known import DependencyNames, warn_unknown
from stoic.fit._plan import MAX_SCENARIOS
from stoic.fit._scenario import Scenario, decoded
from stoic.guard import registry as guard_registry

log = logging.getLogger("stoic.fit")
#: the longest a following process may take to see a change or the kill switch (seconds)
MAX_CHECK_EVERY = 1.0
SECTION = "scenarios"


class Catalog:
    """The scenarios switched on for a share of real traffic (Netflix FIT's scenario list).

    The middlewares consult it for every request, after any signed header; expired scenarios drop out
    on their own. A dependency name that `registry` (the guard's process registry unless given; None
    for no check) does not know warns with `FitWarning` and close matches.

    With `board` (a fault board file, the one the chaos fault board uses) the catalogue is
    fleet-wide: `add`, `remove` and `clear` write the board, and every process whose catalog follows
    the same board applies the change within `check_every` seconds (at most 1). While the kill switch
    next to the board is on (`halt()`, `stoic chaos` or `touch kill-switch`), no scenario injects
    anything in any of them, including scenarios that arrived in a signed header.

    >>> catalog.follow("/run/stoic/faults.json")         # once, at start-up, in every process
    >>> catalog.add(Scenario("tv-no-recs", "personalisation", devices=["tv"], percent=1, ttl=600))
    """

    def __init__(
        self,
        *,
        max_scenarios: int = MAX_SCENARIOS,
        registry: DependencyNames | None = guard_registry,
        clock: Callable[[], float] = time.time,
        board: str | os.PathLike[str] | None = None,
        check_every: float = 0.1,
    ) -> None:
        valid = isinstance(max_scenarios, int) and not isinstance(max_scenarios, bool)
        if not valid or not 1 <= max_scenarios <= 1000:
            raise ValueError(f"max_scenarios: must be an integer in [1, 1000], got {max_scenarios!r}")
        self.max_scenarios = max_scenarios
        self.registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._scenarios: tuple[Scenario, ...] = ()
        self._halted = False  # the switch of a catalog without a board
        self._watch: BoardWatch | None = None
        if board is not None:
            self.follow(board, check_every=check_every)

    # -- where the scenarios live ------------------------------------------------------------------

    @property
    def board(self) -> Path | None:
        """The fault board this catalog follows (None: this process only)."""
        watch = self._watch
        return None if watch is None else watch.board

    def follow(self, board: str | os.PathLike[str] | None = None, *, check_every: float = 0.1) -> None:
        """Take the scenarios from the fault board at `board` (default ``$STOIC_FAULT_BOARD``) from now on.

        The scenarios this catalog held alone are dropped: the board is the one list. `check_every`
        (seconds, in (0, 1]) bounds how stale this process's view of the board and of the kill switch
        may be.
        """
        where = board if board is not None else os.environ.get(BOARD_ENV)
        if not where:
            raise ValueError(
                f"board: give the fault board's path, or set the {BOARD_ENV} environment variable"
            )
        if not isinstance(where, str | os.PathLike):
            raise TypeError(f"board: must be a path, got {type(where).__name__}")
        number = isinstance(check_every, int | float) and not isinstance(check_every, bool)
        if not number or not math.isfinite(check_every) or not 0 < check_every <= MAX_CHECK_EVERY:
            raise ValueError(
                f"check_every: must be seconds in (0, {MAX_CHECK_EVERY:g}] (how soon every process sees a "
                f"change and the kill switch), got {check_every!r}"
            )
        watch = BoardWatch(Path(where), float(check_every), self._loaded)
        with self._lock:
            self._watch = watch
            self._scenarios = ()
        watch.refresh(time.monotonic(), force=True)

    def unfollow(self) -> None:
        """Stop following the board: the catalog is this process's alone again, and empty."""
        with self._lock:
            self._watch = None
            self._scenarios = ()

    def _loaded(self, document: dict[str, Any] | None, error: str | None) -> None:
        """A changed board, read: keep its valid scenarios; ignore (and log) every bad one."""
        board = self.board
        if error is not None:
            log.warning("fault board %s: scenarios ignored: %s", board, error)
            self._scenarios = ()
            return
        raw = [] if document is None else document.get(SECTION, [])
        if not isinstance(raw, list):
            log.warning("fault board %s: scenarios ignored: %r must be a list", board, SECTION)
            self._scenarios = ()
            return
        found: dict[str, Scenario] = {}
        for i, item in enumerate(raw):
            if len(found) >= self.max_scenarios:
                log.warning("fault board %s: scenarios after the first %d ignored", board, self.max_scenarios)
                break
            try:
                scenario = decoded(item)  # validated as when written; a receiver warns about nothing
            except InvalidScenario as exc:
                log.warning("fault board %s: scenario %d ignored: %s", board, i, exc)
                continue
            found[scenario.name] = scenario  # one per name: the last written wins
        self._scenarios = tuple(found.values())

    def _current(self) -> tuple[Scenario, ...]:
        watch = self._watch
        if watch is not None:
            watch.refresh(time.monotonic())
        return self._scenarios

    # -- changing it -------------------------------------------------------------------------------

    def add(self, scenario: Scenario) -> None:
        """Switch a scenario on (replacing one with the same name); on the board when following one."""
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        watch = self._watch
        if watch is None:
            with self._lock:
                now = self._clock()
                kept = tuple(s for s in self._scenarios if s.name != scenario.name and not s.expired(now))
                self._check_room(len(kept))
                self._scenarios = (*kept, scenario)
        else:
            def added(items: list[Any]) -> list[Any]:
                kept = [item for item in items if not self._drop(item, scenario.name)]
                self._check_room(sum(1 for item in kept if _readable(item)))
                return [*kept, scenario.to_dict()]

            change_section(watch.board, SECTION, added)
            watch.refresh(time.monotonic(), force=True)
        warn_unknown(scenario, self.registry)

    def _check_room(self, held: int) -> None:
        if held >= self.max_scenarios:
            raise ValueError(f"scenarios: the catalog holds at most {self.max_scenarios} scenarios")

    def _drop(self, item: Any, name: str) -> bool:
        """Whether a board item goes on a write: the one being replaced or removed, or an expired one.
        An item this version cannot read is kept as it is: another version may have written it."""
        if isinstance(item, dict) and item.get("name") == name:
            return True
        expires = item.get("expires_at") if isinstance(item, dict) else None
        return isinstance(expires, int | float) and not isinstance(expires, bool) and expires <= self._clock()

    def remove(self, name: str) -> bool:
        """Switch the scenario called `name` off; False if there was none."""
        watch = self._watch
        if watch is None:
            with self._lock:
                before = len(self._scenarios)
                self._scenarios = tuple(s for s in self._scenarios if s.name != name)
                return len(self._scenarios) != before
        found = [False]

        def removed(items: list[Any]) -> list[Any]:
            kept = [item for item in items if not (isinstance(item, dict) and item.get("name") == name)]
            found[0] = len(kept) != len(items)
            return kept

        change_section(watch.board, SECTION, removed)
        watch.refresh(time.monotonic(), force=True)
        return found[0]

    def clear(self) -> None:
        """Switch every scenario off."""
        watch = self._watch
        if watch is None:
            with self._lock:
                self._scenarios = ()
            return
        change_section(watch.board, SECTION, lambda items: [])
        watch.refresh(time.monotonic(), force=True)

    # -- halt all ----------------------------------------------------------------------------------

    def halt(self, reason: str = "") -> None:
        """Halt every failure: no scenario injects anything while halted (fleet-wide with a board:
        the chaos kill switch, which also stops every monkey and fault-board rule)."""
        watch = self._watch
        if watch is None:
            self._halted = True
            return
        watch.kill_switch.parent.mkdir(parents=True, exist_ok=True)
        watch.kill_switch.write_text(reason or "halted from the FIT catalog\n")
        watch.refresh(time.monotonic(), force=True)

    def resume(self) -> None:
        """Let scenarios inject again (with a board: releases the chaos kill switch)."""
        watch = self._watch
        if watch is None:
            self._halted = False
            return
        kill_switch_path(watch.board).unlink(missing_ok=True)
        watch.refresh(time.monotonic(), force=True)

    def halted(self) -> bool:
        """True while every failure is halted (checked against the board at most every `check_every`)."""
        watch = self._watch
        if watch is None:
            return self._halted
        watch.refresh(time.monotonic())
        return watch.halted

    # -- reading it --------------------------------------------------------------------------------

    def get(self, name: str) -> Scenario | None:
        """The active scenario called `name`, if any."""
        return next((s for s in self.active() if s.name == name), None)

    def active(self) -> tuple[Scenario, ...]:
        """The scenarios that have not expired (listed even while halted: they resume with the switch)."""
        now = self._clock()
        return tuple(s for s in self._current() if not s.expired(now))

    def matching(self, identity: RequestIdentity) -> tuple[Scenario, ...]:
        """The active scenarios that target `identity` (none while halted)."""
        scenarios = self._current()
        if not scenarios or self.halted():
            return ()
        now = self._clock()
        return tuple(s for s in scenarios if not s.expired(now) and s.targets(identity))

    def snapshot(self) -> list[dict[str, Any]]:
        """The active scenarios as JSON-ready dicts."""
        return [s.to_dict() for s in self.active()]

    def status(self) -> dict[str, Any]:
        """What a dashboard shows: the board followed, whether failures are halted, the scenarios."""
        board = self.board
        return {
            "board": None if board is None else str(board),
            "halted": self.halted(),
            "scenarios": self.snapshot(),
        }

    def __len__(self) -> int:
        return len(self.active())


def _readable(item: Any) -> bool:
    try:
        decoded(item)
    except InvalidScenario:
        return False
    return True


catalog = Catalog()
"""The process-wide catalog the middlewares consult unless given another."""
