"""The fault board file: one small JSON document every process of the fleet reads.

It holds two sections: ``rules`` (the chaos fault board's fleet-wide faults, posted by the Latency
Monkey) and ``scenarios`` (FIT's catalogue). Each writer changes its own section only, under an
exclusive lock on a file next to the board, and replaces the file atomically, so neither a reader
nor the other section's writer ever sees half a change. The kill switch is a file next to the board:
while it exists, neither section injects anything.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Unix: writers in one process still take the thread lock
    fcntl = None  # type: ignore[assignment]

#: environment variable naming the board file
BOARD_ENV = "STOIC_FAULT_BOARD"
#: file name of the kill switch, next to the board: while it exists, nothing is injected
KILL_SWITCH_FILE = "kill-switch"
_LOCK_FILE = ".faults.lock"
_VERSION = 1

_thread_lock = threading.Lock()  # flock is per open file, so threads of one process also need this


def kill_switch_path(board: Path) -> Path:
    """The kill switch that halts every fault the board at `board` serves."""
    return board.parent / KILL_SWITCH_FILE


def read_document(board: Path) -> dict[str, Any]:
    """The board's JSON object ({} when the file is missing); OSError or ValueError if unreadable."""
    try:
        text = board.read_text()
    except FileNotFoundError:
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError('it must hold a JSON object {"rules": [...], "scenarios": [...]}')
    return data


@contextmanager
def _locked(board: Path) -> Iterator[None]:
    board.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock:
        if fcntl is None:
            yield
            return
        with open(board.parent / _LOCK_FILE, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes
            yield


def change_section(board: Path, section: str, change: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """Replace one section of the board with `change(current items)`, keeping every other section.

    The read, the change and the write happen under the board's lock, so two writers (an operator
    adding a scenario while the Latency Monkey posts a rule) never lose each other's change. A board
    that cannot be parsed is refused (ValueError), not overwritten: its other section may be a
    half-edited file somebody is fixing.
    """
    with _locked(board):
        document = read_document(board)
        items = document.get(section, [])
        if not isinstance(items, list):
            raise ValueError(f"{section}: the board's {section!r} must be a list, got {type(items).__name__}")
        new = change(list(items))
        document[section] = new
        document.setdefault("version", _VERSION)
        _write(board, document)
        return new


def _write(board: Path, document: dict[str, Any]) -> None:
    body = json.dumps(document, indent=1)
    fd, tmp = tempfile.mkstemp(dir=board.parent, prefix=".faults-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, board)  # atomic: a reader sees the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BoardWatch:
    """Re-reads the board only when it changed, and the kill switch, at most every `check_every` s.

    `load(document, error)` turns a freshly read board (None when there is no file; `error` says why
    an unreadable one was not read) into whatever the owner keeps; it runs on the calling thread, at
    most once per change of the file. Cheap on the call path: one clock read, and one
    `stat` of each file per `check_every`.
    """

    def __init__(
        self, board: Path, check_every: float, load: Callable[[dict[str, Any] | None, str | None], None]
    ) -> None:
        self.board = board
        self.kill_switch = kill_switch_path(board)
        self.check_every = check_every
        self.halted = False
        self._load = load
        self._signature: tuple[int, int, int] | None = None
        self._next = 0.0
        self._lock = threading.Lock()

    def refresh(self, now: float, *, force: bool = False) -> None:
        """Look at the files if `check_every` has passed (or `force`); one thread at a time looks."""
        if not force and now < self._next:
            return
        if not self._lock.acquire(blocking=force):
            return  # another thread is looking right now: use what it had
        try:
            self._next = now + self.check_every
            self.halted = self.kill_switch.exists()
            try:
                st = self.board.stat()
            except OSError:
                if self._signature is not None or force:
                    self._signature = None
                    self._load(None, None)
                return
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if signature != self._signature or force:
                self._signature = signature
                try:
                    document = read_document(self.board)
                except (OSError, ValueError) as exc:
                    self._load(None, str(exc))
                else:
                    self._load(document, None)
        finally:
            self._lock.release()
