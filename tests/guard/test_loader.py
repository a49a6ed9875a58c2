"""Dependencies from a mapping, a TOML file and environment variables, with errors naming the key."""

from __future__ import annotations

import doctest
import operator
from pathlib import Path

import pytest

import stoic.guard.loader as loader
from stoic.guard import AdaptiveBulkhead, ConfigError, Registry, ThreadPoolBulkhead
from stoic.guard.loader import build, load, settings

FILE = """
[dependencies.ratings-api]
timeout = 0.5
owner = "catalogue"

[dependencies.ratings-api.breaker]
error_rate = 0.25
min_calls = 4
failure_on = ["ConnectionError", "TimeoutError"]
failure_when = "operator.not_"

[dependencies.ratings-api.bulkhead]
kind = "pool"
workers = 3

[dependencies.ratings-api.retry]
attempts = 2
retry_on = ["ConnectionError"]
budget = false

[[dependencies.ratings-api.fallbacks]]
fn = "builtins.len"
name = "length"

[dependencies.search]
timeout = 0.2
bulkhead = { kind = "adaptive", algorithm = "aimd", max_limit = 50 }
breaker = false
"""


def test_the_module_example_runs() -> None:
    assert doctest.testmod(loader).failed == 0


def test_a_file_builds_every_dependency_with_its_policies(tmp_path: Path) -> None:
    path = tmp_path / "guard.toml"
    path.write_text(FILE)
    registry = Registry()
    deps = load(path, registry=registry)

    ratings, search = deps["ratings-api"], deps["search"]
    assert ratings.timeout == 0.5 and ratings.owner == "catalogue"
    policy = ratings.breaker_policy
    assert policy is not None and policy.error_rate == 0.25 and policy.min_calls == 4
    assert policy.failure_on == (ConnectionError, TimeoutError) and policy.failure_when is operator.not_
    assert ratings.bulkhead == ThreadPoolBulkhead(workers=3)
    assert ratings.retry is not None and ratings.retry.attempts == 2 and ratings.retry.budget is None
    assert [f.name for f in ratings.fallbacks] == ["length"]
    assert search.breaker_policy is None
    assert search.bulkhead == AdaptiveBulkhead(algorithm="aimd", max_limit=50)
    assert sorted(registry.names()) == ["ratings-api", "search"]

    # the policies act: a refused connection goes to the fallback named in the file
    def refused(text: str) -> str:
        raise ConnectionRefusedError(text)

    assert ratings.call(refused, "abcd") == 4


def test_environment_variables_override_declared_settings(tmp_path: Path) -> None:
    path = tmp_path / "guard.toml"
    path.write_text(FILE)
    env = {
        "STOIC_GUARD__RATINGS_API__TIMEOUT": "0.8",
        "STOIC_GUARD__RATINGS_API__BREAKER__ERROR_RATE": "0.3",
        "STOIC_GUARD__SEARCH__BULKHEAD__MAX_LIMIT": "80",
        "STOIC_GUARD__SEARCH__OWNER": "search-team",  # not TOML: read as text
        "UNRELATED": "1",
    }
    deps = load(path, env=env, registry=None)
    ratings = deps["ratings-api"]
    assert ratings.timeout == 0.8
    assert ratings.breaker_policy is not None and ratings.breaker_policy.error_rate == 0.3
    assert ratings.breaker_policy.min_calls == 4  # the rest of the table stays
    assert deps["search"].owner == "search-team"
    assert deps["search"].bulkhead == AdaptiveBulkhead(algorithm="aimd", max_limit=80)


@pytest.mark.parametrize(
    ("tables", "words"),
    [
        ({"a": {"timout": 1}}, "dependencies.a.timout: unknown setting; allowed: timeout, owner, breaker"),
        ({"a": {"timeout": "1s"}}, "dependencies.a.timeout: must be seconds (a number) or none, got '1s'"),
        ({"a": {"breaker": {"error_rat": 0.5}}}, "a.breaker.error_rat: unknown setting; allowed: window"),
        ({"a": {"breaker": {"error_rate": 2.0}}}, "dependencies.a.breaker: BreakerPolicy.error_rate"),
        ({"a": {"breaker": 3}}, "dependencies.a.breaker: must be a table of BreakerPolicy fields"),
        ({"a": {"bulkhead": {"kind": "fork"}}}, "a.bulkhead.kind: must be one of semaphore, pool"),
        ({"a": {"bulkhead": {"kind": "pool", "max_concurrent": 3}}}, "max_concurrent: unknown setting"),
        ({"a": {"breaker": {"failure_on": "ValueError"}}}, "failure_on: must be a list of exception"),
        ({"a": {"breaker": {"failure_on": ["nowhere.Error"]}}}, "failure_on[0]: cannot import 'nowhere'"),
        ({"a": {"breaker": {"failure_on": ["os.getcwd"]}}}, "[0]: 'os.getcwd' is not an exception class"),
        ({"a": {"breaker": {"failure_on": ["os.NoSuch"]}}}, "failure_on[0]: os has no 'NoSuch'"),
        ({"a": {"retry": {"retry_when": "os.sep"}}}, "a.retry.retry_when: 'os.sep' is not callable"),
        ({"a": {"fallbacks": {"fn": "len"}}}, "dependencies.a.fallbacks: must be a list of tables with fn"),
        ({"a": {"fallbacks": [{"fn": ".len"}]}}, "fallbacks[0].fn: must be a dotted name"),
        ({"a": {"owner": 7}}, "dependencies.a.owner: must be a team name (text), got 7"),
        ({"a": []}, "dependencies.a: must be a table of settings, got []"),
    ],
)
def test_mistakes_name_the_key(tables: dict[str, object], words: str) -> None:
    registry = Registry()
    with pytest.raises(ConfigError) as caught:
        build({"first": {"timeout": 1.0}, **tables}, registry=registry)
    assert words in str(caught.value)
    assert registry.names() == [], "nothing is built until everything is valid"


def test_file_and_environment_mistakes_name_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "guard.toml"
    with pytest.raises(ConfigError, match=r"guard.toml: cannot be read"):
        load(path, registry=None)
    path.write_text("[dependencies.a\n")
    with pytest.raises(ConfigError, match=r"guard.toml: not valid TOML"):
        load(path, registry=None)
    path.write_text("[services.a]\ntimeout = 1\n")
    with pytest.raises(ConfigError, match=r"unknown table 'services'; the file has one table"):
        load(path, registry=None)
    path.write_text(FILE)
    with pytest.raises(ConfigError, match=r"STOIC_GUARD__RATINGS__TIMEOUT: no declared dependency is called"):
        load(path, env={"STOIC_GUARD__RATINGS__TIMEOUT": "1"}, registry=None)
    with pytest.raises(ConfigError, match=r"STOIC_GUARD__SEARCH: must be STOIC_GUARD__NAME__SETTING or"):
        load(path, env={"STOIC_GUARD__SEARCH": "1"}, registry=None)


def test_settings_feed_configure_and_leave_the_rest() -> None:
    deps = build({"search": {"timeout": 0.2, "breaker": {"min_calls": 5}}}, registry=None)
    search = deps["search"]
    search.configure(**settings({"timeout": 1.5}))
    assert search.timeout == 1.5
    assert search.breaker_policy is not None and search.breaker_policy.min_calls == 5
    with pytest.raises(ConfigError, match=r"body.nope: unknown setting"):
        settings({"nope": 1}, "body")
