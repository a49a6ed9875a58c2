"""Targets: what the monkeys can really stop. Local processes here; Kubernetes pods in `kubernetes`."""

from __future__ import annotations

from typing import Protocol

from .fleet import Fleet, Member
from .instance import Instance
from .supervisor import Supervisor


class Target(Protocol):
    """Something that lists instances and terminates one for real."""

    name: str

    def fleet(self) -> Fleet:
        """Every known instance (use `.alive()` for the running ones)."""
        ...

    def terminate(self, member: Member) -> None:
        """Stop `member` abruptly; raise if it could not be done."""
        ...


class ProcessTarget:
    """Local processes kept by a `Supervisor`; terminate = SIGKILL (replaced per `restart_after`)."""

    name = "processes"

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def fleet(self) -> Fleet:
        return self.supervisor.fleet()

    def terminate(self, member: Member) -> None:
        if not isinstance(member, Instance):
            raise TypeError(f"ProcessTarget terminates Instances, got {type(member).__name__}")
        if not self.supervisor.kill(member):
            raise RuntimeError(f"instance {member.id} was not alive")

    def __repr__(self) -> str:
        return f"ProcessTarget({self.supervisor!r})"


__all__ = ["ProcessTarget", "Target"]
