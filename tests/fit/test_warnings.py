"""Scenarios that are valid but probably not what was meant warn with FitWarning."""

from __future__ import annotations

import warnings

import pytest

from stoic.fit import Catalog, Fit, FitWarning, HeaderCodec, RequestIdentity, Scenario
from stoic.guard import Dependency, Fallback, Registry

SECRET = "warnings-test-secret-0123456789"


def make_registry(*names: str) -> Registry:
    registry = Registry()
    for name in names:
        Dependency(name, timeout=1.0, registry=registry, fallbacks=[Fallback.value("cached", name="cached")])
    return registry


def test_a_misspelt_dependency_warns_with_close_matches() -> None:
    registry = make_registry("reviews", "ratings", "personalisation")
    with Fit(registry=registry) as fit:
        with pytest.warns(FitWarning) as caught:
            fit.fail("reviws")
        assert len(caught) == 1
        message = str(caught[0].message)
        assert message.startswith("dependencies: scenario 'fit-1' fails 'reviws', which no registered")
        assert "did you mean 'reviews'?" in message
        assert caught[0].filename == __file__  # points at the line that added the scenario
        with pytest.warns(FitWarning, match=r"known: personalisation, ratings, reviews"):
            fit.add(Scenario("far-off", "zzz"))
        with pytest.warns(FitWarning, match=r"a glob matching none of them"):
            fit.fail("zz*")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit.fail("rat*")  # a glob matching 'ratings': nothing to warn about


def test_known_names_star_and_an_empty_registry_do_not_warn() -> None:
    registry = make_registry("reviews")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Fit(registry=registry) as fit:
            fit.fail("reviews")
            fit.fail("*")
        with Fit(registry=Registry()) as fit:  # nothing registered yet: no basis for a warning
            fit.fail("created-later")
        with Fit(registry=None) as fit:
            fit.fail("unchecked")


def test_a_dependency_registered_later_is_still_failed() -> None:
    registry = make_registry("reviews")
    with Fit(registry=registry) as fit:
        with pytest.warns(FitWarning, match="'recommendations'"):
            fit.fail("recommendations")
        late = Dependency("recommendations", timeout=1.0, registry=registry,
                          fallbacks=[Fallback.value("popular", name="popular")])
        assert late.execute(lambda: "mine").source == "popular"
        assert fit.injected("recommendations") == 1


def test_the_catalog_checks_names_too() -> None:
    catalog = Catalog(registry=make_registry("ratings"))
    with pytest.warns(FitWarning, match="did you mean 'ratings'"):
        catalog.add(Scenario("canary", "ratngs", ttl=60))
    assert catalog.get("canary") is not None  # still switched on: it may be meant for a later dependency
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Catalog(registry=make_registry("ratings")).add(Scenario("canary", "ratings"))


def test_a_percent_below_one_warns_that_percent_is_out_of_100() -> None:
    with pytest.warns(FitWarning) as caught:
        scenario = Scenario("canary", "ratings", percent=0.05)
    assert str(caught[0].message) == (
        "percent: 0.05 is out of 100, so it fails 0.05 % of requests (about 1 in 2,000); "
        "for 5 % write percent=5"
    )
    assert caught[0].filename == __file__
    assert scenario.percent == 0.05  # legal: a warning, not an error
    with pytest.warns(FitWarning, match="percent: 0.5 is out of 100"):
        Fit(registry=None).fail("ratings", percent=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Scenario("one", "ratings", percent=1)
        Scenario("five", "ratings", percent=5)


def test_a_receiver_does_not_warn_for_a_small_percent_it_was_sent() -> None:
    codec = HeaderCodec(SECRET)
    with pytest.warns(FitWarning):
        value = codec.sign([Scenario("canary", "ratings", percent=0.1)], audience="*")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per request would flood a receiver's log
        signed = codec.verify(value, service="ratings")
    assert signed.scenarios[0].percent == 0.1
    assert signed.plan(RequestIdentity("req-1")).scenarios[0].percent == 0.1
