"""Who owns what: dependency / region / indicator -> team -> receivers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stoic.signals import _validate


@dataclass(frozen=True, slots=True)
class Team:
    """A team and the receivers (webhook names) its alerts go to."""

    name: str
    receivers: tuple[str, ...] = ()


@dataclass(slots=True)
class Ownership:
    """The ownership registry. Lookups go dependency, then region, then indicator, then `default`.

    ```python
    owners = Ownership.from_dict({
        "teams": {"playback": {"receivers": ["playback-pager"]}, "sre": {"receivers": ["sre-chat"]}},
        "dependencies": {"personalisation": "playback"},
        "regions": {"eu-west": "sre"},
        "default": "sre",
    })
    ```
    """

    teams: dict[str, Team] = field(default_factory=dict)
    dependencies: dict[str, str] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)
    indicators: dict[str, str] = field(default_factory=dict)
    default: str = "sre"

    @classmethod
    def from_dict(cls, config: Mapping[str, object]) -> Ownership:
        """Build from plain config (JSON/YAML); errors name the offending field."""
        if not isinstance(config, Mapping):
            raise ValueError(f"ownership: must be an object, got {type(config).__name__}")
        allowed = {"teams", "dependencies", "regions", "indicators", "default"}
        unknown = set(config) - allowed
        if unknown:
            raise ValueError(
                f"ownership.{sorted(unknown)[0]}: unknown field; allowed: {', '.join(sorted(allowed))}"
            )
        teams: dict[str, Team] = {}
        raw_teams = config.get("teams", {})
        if not isinstance(raw_teams, Mapping):
            raise ValueError("ownership.teams: must be an object of team name -> {receivers: [...]}")
        for name, spec in raw_teams.items():
            _validate.text(f"ownership.teams.{name}", name, max_len=100)
            receivers = spec.get("receivers", []) if isinstance(spec, Mapping) else None
            if not isinstance(receivers, list) or not all(isinstance(r, str) and r for r in receivers):
                raise ValueError(f"ownership.teams.{name}.receivers: must be a list of receiver names")
            teams[name] = Team(name, tuple(receivers))
        maps: dict[str, dict[str, str]] = {}
        for key in ("dependencies", "regions", "indicators"):
            raw = config.get(key, {})
            if not isinstance(raw, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
            ):
                raise ValueError(f"ownership.{key}: must be an object of name -> team name")
            for k, team in raw.items():
                if team not in teams:
                    raise ValueError(
                        f"ownership.{key}.{k}: team {team!r} is not in ownership.teams "
                        f"({', '.join(sorted(teams)) or 'none defined'})"
                    )
            maps[key] = dict(raw)
        default = config.get("default", "sre")
        if not isinstance(default, str) or not default:
            raise ValueError(f"ownership.default: must be a team name, got {default!r}")
        return cls(teams, maps["dependencies"], maps["regions"], maps["indicators"], default)

    def team_for(
        self, *, dependency: str | None = None, region: str | None = None, indicator: str | None = None
    ) -> Team:
        """The owning team: the most specific match wins."""
        for table, key in (
            (self.dependencies, dependency),
            (self.regions, region),
            (self.indicators, indicator),
        ):
            if key is not None and key in table:
                return self.team(table[key])
        return self.team(self.default)

    def team(self, name: str) -> Team:
        return self.teams.get(name, Team(name))

    def learn_dependency(self, dependency: str, team: str) -> None:
        """Adopt an owner declared elsewhere (e.g. `Dependency(owner=...)`) unless configured."""
        self.dependencies.setdefault(dependency, team)
