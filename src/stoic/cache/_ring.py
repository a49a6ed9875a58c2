"""Ketama consistent hashing: each node owns many points on a 32-bit circle.

A key belongs to the first point clockwise from its hash, so adding one node to N moves about
1/(N+1) of the keys and removing one moves only that node's keys.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

from ._errors import InvalidConfig


def _hash(key: bytes) -> int:
    return int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest()[:4], "little")


class HashRing:
    """A ketama ring with `points` virtual nodes per node (160, as libketama).

    >>> ring = HashRing(["127.0.0.1:11211", "127.0.0.2:11211"])
    >>> ring.node_for(b"title:42") in ring.nodes
    True
    """

    def __init__(self, nodes: Iterable[str] = (), points: int = 160) -> None:
        if isinstance(points, bool) or not isinstance(points, int) or not 4 <= points <= 10_000:
            raise InvalidConfig(f"points must be an integer in 4..10000 (a multiple of 4), got {points!r}")
        self._per_node = points
        self._nodes: list[str] = []
        self._points: list[int] = []
        self._owners: list[str] = []
        for node in nodes:
            self.add(node)

    @property
    def nodes(self) -> list[str]:
        """The nodes on the ring, in the order they were added."""
        return list(self._nodes)

    def add(self, node: str) -> None:
        """Place `node` on the ring (its points depend only on its name)."""
        if node in self._nodes:
            raise InvalidConfig(f"node {node!r} is already on the ring")
        self._nodes.append(node)
        self._rebuild()

    def remove(self, node: str) -> None:
        """Take `node` off the ring; its keys move to their next nodes clockwise."""
        if node not in self._nodes:
            raise InvalidConfig(f"node {node!r} is not on the ring (nodes: {self._nodes})")
        self._nodes.remove(node)
        self._rebuild()

    def node_for(self, key: bytes) -> str:
        """The node that owns `key`."""
        if len(self._owners) == 0:
            raise InvalidConfig("the ring has no nodes")
        if len(self._nodes) == 1:
            return self._nodes[0]
        i = bisect.bisect(self._points, _hash(key))
        return self._owners[i if i < len(self._points) else 0]

    def _rebuild(self) -> None:
        ring: list[tuple[int, str]] = []
        for node in self._nodes:
            for i in range(self._per_node // 4):
                digest = hashlib.md5(f"{node}-{i}".encode(), usedforsecurity=False).digest()
                for h in range(4):
                    ring.append((int.from_bytes(digest[h * 4 : h * 4 + 4], "little"), node))
        ring.sort()
        self._points = [p for p, _ in ring]
        self._owners = [n for _, n in ring]
