"""The supervisor's watchdog: a tiny separate process that SIGKILLs the children's process groups
when the supervising process dies, however it dies (even ``kill -9``).

The kernel's parent-death signal (`PR_SET_PDEATHSIG`) reaches only each direct child; what that child
started (``sh -c "sleep 444"``, a worker ignoring SIGTERM) would be reparented to init and live on.
The watchdog knows every group and sees its parent go as the end of its stdin.

Run as a script with only the standard library (``python -I -S _watchdog.py``), so it starts in a few
milliseconds. Protocol on stdin, one line each: ``+PGID`` (watch this group), ``-PGID`` (it is
finished). End of input: kill every group still watched, then exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the supervisor is not for us
    groups: set[int] = set()
    for line in sys.stdin:
        op, _, number = line.strip().partition(" ")
        if not number.isdigit():
            continue
        if op == "+":
            groups.add(int(number))
        elif op == "-":
            groups.discard(int(number))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


if __name__ == "__main__":
    main()
