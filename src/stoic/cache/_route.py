"""Which zones serve reads and which take writes: one object, replaced whole on a membership change."""

from __future__ import annotations

from ._latch import LatchSpec, Policy
from ._writer import WRITES, ZoneWriter
from ._zone import Zone


class Route:
    """The serving zones in read order (the local zone first), the write-only (shadow) zones, the
    writer of every zone but the local one, and the latch specs over the serving zones.

    A shadow zone gets every write but is never read and never counts towards a write's policy:
    it is how a new zone (or a replacement cluster) fills up before it serves.
    """

    __slots__ = ("default_specs", "names", "order", "remote", "shadows", "specs", "writers")

    def __init__(self, order: list[Zone], shadows: list[Zone], writers: dict[str, ZoneWriter],
                 policy: Policy) -> None:
        self.order = order
        self.remote = order[1:]
        self.shadows = shadows
        self.names = [z.name for z in order]
        self.writers = [writers[z.name] for z in (*self.remote, *shadows)]
        self.specs = {(op, p): LatchSpec(op, p, self.names) for op in WRITES for p in Policy}
        self.default_specs = {op: self.specs[op, policy] for op in WRITES}
