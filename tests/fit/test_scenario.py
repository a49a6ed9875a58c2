from __future__ import annotations

import time

import pytest

from stoic.fit import Catalog, InvalidScenario, RequestIdentity, Scenario


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"name": ""}, "name", "1-64 characters"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({"dependencies": []}, "dependencies", "at least one"),
        ({"dependencies": [""]}, "dependencies", "must not be empty"),
        ({"dependencies": 3}, "dependencies", "string or a list"),
        ({"kind": "explode"}, "kind", "error, delay, timeout, reject"),
        ({"kind": "delay"}, "delay", "when kind is 'delay'"),
        ({"kind": "delay", "delay": 61}, "delay", "[0, 60]"),
        ({"delay": -1}, "delay", "[0, 60]"),
        ({"percent": 0}, "percent", "(0, 100]"),
        ({"percent": 101}, "percent", "(0, 100]"),
        ({"percent": float("nan")}, "percent", "(0, 100]"),
        ({"percent": "50"}, "percent", "must be a number"),
        ({"percent": 10**400}, "percent", "(0, 100], got an integer beyond any float"),
        ({"delay": -(10**400)}, "delay", "[0, 60], got an integer beyond any float"),
        ({"expires_at": 10**5000}, "expires_at", "got an integer beyond any float"),
        ({"user_ids": []}, "user_ids", "at least one"),
        ({"user_ids": ["u"] * 1001}, "user_ids", "at most 1000"),
        ({"devices": [1]}, "devices", "must be a string"),
        ({"ttl": 0}, "ttl", "(0, 604800]"),
        ({"ttl": 5, "expires_at": 10.0}, "ttl", "not both"),
    ],
)
def test_invalid_fields_are_named_with_their_allowed_values(kwargs: dict, field: str, words: str) -> None:
    args = {"name": "s1", "dependencies": "personalisation", **kwargs}
    with pytest.raises(InvalidScenario) as info:
        Scenario(args.pop("name"), args.pop("dependencies"), **args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")
    assert words in str(info.value)


def test_from_dict_names_unknown_and_missing_fields() -> None:
    with pytest.raises(InvalidScenario, match=r"^colour: is not a scenario field; allowed: name, "):
        Scenario.from_dict({"name": "a", "dependencies": "x", "colour": "red"})
    with pytest.raises(InvalidScenario, match=r"^dependencies: is required"):
        Scenario.from_dict({"name": "a"})
    with pytest.raises(InvalidScenario, match=r"^scenario: must be an object"):
        Scenario.from_dict(["a"])  # type: ignore[arg-type]


def test_round_trip_and_equality() -> None:
    scenario = Scenario(
        "tv-slow", ["ratings", "personalisation"], "delay", delay=0.25, percent=12.5,
        user_ids=["u1", "u2"], devices=["TV"], expires_at=2_000_000_000.0,
    )
    again = Scenario.from_dict(scenario.to_dict())
    assert again == scenario
    assert again.devices == frozenset({"tv"})  # device types compare case-insensitively
    assert again.fault.kind == "delay" and again.fault.delay == 0.25
    assert scenario.replace(percent=50).percent == 50
    with pytest.raises(AttributeError):
        scenario.percent = 1  # type: ignore[misc]


def test_targets_combine_with_and() -> None:
    scenario = Scenario("s", "x", user_ids=["u1"], devices=["tv"])
    assert scenario.targets(RequestIdentity("r", "u1", "TV"))
    assert not scenario.targets(RequestIdentity("r", "u1", "ios"))
    assert not scenario.targets(RequestIdentity("r", "u2", "tv"))
    assert not scenario.targets(RequestIdentity("r", None, None))
    assert Scenario("any", "x").targets(RequestIdentity("r"))


def test_star_covers_every_dependency() -> None:
    assert Scenario("all", "*").covers("anything")
    assert not Scenario("one", "ratings").covers("personalisation")


def test_percentage_is_stable_and_close_to_the_share() -> None:
    scenario = Scenario("five-percent", "x", percent=5)
    ids = [f"req-{i}" for i in range(2000)]
    first = [scenario.targets(RequestIdentity(rid)) for rid in ids]
    second = [Scenario("five-percent", "y", percent=5).targets(RequestIdentity(rid)) for rid in ids]
    assert first == second  # same request id + scenario name: the same decision, wherever it is made
    hits = sum(first)
    assert 60 <= hits <= 140, hits  # 5 % of 2,000 = 100; binomial sd about 10
    # another scenario name splits the same requests differently
    other = [Scenario("other", "x", percent=5).targets(RequestIdentity(rid)) for rid in ids]
    assert other != first
    half = sum(Scenario("half", "x", percent=50).targets(RequestIdentity(rid)) for rid in ids)
    assert 900 <= half <= 1100, half


def test_expiry_and_catalog() -> None:
    now = [1000.0]
    catalog = Catalog(clock=lambda: now[0], max_scenarios=2)
    catalog.add(Scenario("short", "x", expires_at=1010.0))
    catalog.add(Scenario("tv", "y", devices=["tv"]))
    assert [s.name for s in catalog.matching(RequestIdentity("r", device="tv"))] == ["short", "tv"]
    assert [s.name for s in catalog.matching(RequestIdentity("r", device="web"))] == ["short"]
    with pytest.raises(ValueError, match="at most 2"):
        catalog.add(Scenario("third", "z"))
    now[0] = 1010.0
    assert [s["name"] for s in catalog.snapshot()] == ["tv"]
    catalog.add(Scenario("third", "z"))  # the expired one made room
    assert catalog.remove("tv") and not catalog.remove("tv")
    assert len(catalog) == 1
    assert Scenario("ttl", "x", ttl=60).expires_at == pytest.approx(time.time() + 60, abs=2)
    with pytest.raises(ValueError, match=r"max_scenarios: must be an integer in \[1, 1000\]"):
        Catalog(max_scenarios=0)
