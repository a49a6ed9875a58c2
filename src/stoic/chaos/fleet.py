"""`Fleet`: a read-only view over instances, grouped the way the monkeys pick their victims."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol, runtime_checkable

Grouping = Literal["app", "app+region", "app+zone"]
GROUPINGS: tuple[str, ...] = ("app", "app+region", "app+zone")


@runtime_checkable
class Member(Protocol):
    """What the Simian Army needs to know of an instance, a process or a pod alike."""

    @property
    def id(self) -> str: ...
    @property
    def app(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def alive(self) -> bool: ...


def group_key(member: Member, by: str) -> str:
    """The group a member belongs to: ``app``, ``app/region`` or ``app/zone``."""
    if by == "app":
        return member.app
    if by == "app+region":
        return f"{member.app}/{member.region}"
    if by == "app+zone":
        return f"{member.app}/{member.zone}"
    raise ValueError(f"grouping must be one of {', '.join(GROUPINGS)}; got {by!r}")


class Fleet:
    """An immutable selection of instances with grouping helpers."""

    __slots__ = ("_members",)

    def __init__(self, members: Iterable[Member] = ()) -> None:
        self._members: tuple[Member, ...] = tuple(members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __bool__(self) -> bool:
        return bool(self._members)

    def __repr__(self) -> str:
        return f"Fleet({len(self._members)} instances, {len(self.alive())} alive)"

    @property
    def instances(self) -> tuple[Member, ...]:
        return self._members

    def alive(self) -> Fleet:
        """Only the instances whose process (or pod) is running."""
        return Fleet(m for m in self._members if m.alive)

    def select(self, app: str | None = None, region: str | None = None, zone: str | None = None) -> Fleet:
        """Instances matching every label given."""
        return Fleet(
            m
            for m in self._members
            if (app is None or m.app == app)
            and (region is None or m.region == region)
            and (zone is None or m.zone == zone)
        )

    def get(self, instance_id: str) -> Member | None:
        return next((m for m in self._members if m.id == instance_id), None)

    def group(self, by: str = "app") -> dict[str, Fleet]:
        """Instances keyed by group (see `group_key`), keys sorted."""
        out: dict[str, list[Member]] = {}
        for m in self._members:
            out.setdefault(group_key(m, by), []).append(m)
        return {k: Fleet(out[k]) for k in sorted(out)}

    def by_app(self) -> dict[str, Fleet]:
        return self._by(lambda m: m.app)

    def by_region(self) -> dict[str, Fleet]:
        return self._by(lambda m: m.region)

    def by_zone(self) -> dict[str, Fleet]:
        return self._by(lambda m: m.zone)

    @property
    def apps(self) -> list[str]:
        return sorted({m.app for m in self._members})

    @property
    def regions(self) -> list[str]:
        return sorted({m.region for m in self._members})

    @property
    def zones(self) -> list[str]:
        return sorted({m.zone for m in self._members})

    def _by(self, key: Callable[[Member], str]) -> dict[str, Fleet]:
        out: dict[str, list[Member]] = {}
        for m in self._members:
            out.setdefault(key(m), []).append(m)
        return {k: Fleet(out[k]) for k in sorted(out)}
