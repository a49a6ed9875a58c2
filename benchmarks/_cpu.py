"""Run a benchmark on one CPU, so that it measures the code rather than cross-CPU wake-ups.

A thread handoff or a loopback request wakes another thread or process twice per operation. When
that one sleeps on another CPU, the wake-up is an inter-processor interrupt; on a virtual machine it
goes through the hypervisor and costs 30-60 us here, more than the whole operation being measured,
and so unevenly that two runs can differ by half. Sharing one CPU turns each wake-up into a plain
context switch. CPython runs one thread's Python code at a time anyway, so a single-threaded client
loses nothing by it; servers and worker threads started inside inherit the CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def one_cpu(enabled: bool = True) -> Iterator[str]:
    """Pin this process (and what it starts from now on) to one CPU; yields a line saying so."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield "every CPU in use (cross-CPU wake-ups included)"
        return
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield f"pinned to CPU {cpu}, with the servers and threads it starts (--all-cpus to use every CPU)"
    finally:
        os.sched_setaffinity(0, allowed)
