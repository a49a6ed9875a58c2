"""The `fit` pytest fixture, used the way a user would use it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stoic.fit import Fit, HeaderCodec, Scenario, current_plan
from stoic.guard import Dependency, Fallback

personalisation = Dependency(
    "fit-fixture-personalisation", timeout=1.0, breaker=None, registry=None,
    fallbacks=[Fallback.value(["popular"], name="popular")],
)


def home(user_id: str) -> tuple[list[str], str]:
    result = personalisation.execute(lambda: [f"for-{user_id}"])
    return result.value, result.source


def test_fallback_answers_when_the_fixture_fails_the_dependency(fit: Fit) -> None:
    assert home("u1") == (["for-u1"], "primary")
    fit.fail("fit-fixture-personalisation", kind="error")
    assert home("u1") == (["popular"], "popular")
    assert fit.injected("fit-fixture-personalisation") == 1
    fit.clear()
    assert home("u1") == (["for-u1"], "primary")
    assert fit.injections == []


def test_each_test_starts_clean() -> None:
    assert current_plan() is None
    assert home("u1") == (["for-u1"], "primary")


def test_fixture_targets_like_a_scenario(fit: Fit) -> None:
    fit.fail("fit-fixture-personalisation", user_ids=["someone-else"])
    assert home("u1")[1] == "primary"
    fit.fail("fit-fixture-personalisation", kind="timeout", name="all")
    assert home("u1")[1] == "popular"
    assert [i.scenario for i in fit.injections] == ["all"]


async def test_fixture_reaches_async_code(fit: Fit) -> None:
    async def rows() -> list[str]:
        await asyncio.sleep(0)
        return ["for-you"]

    fit.fail("fit-fixture-personalisation")
    result = await asyncio.create_task(personalisation.aexecute(rows))  # tasks copy the context
    assert result.source == "popular"


def test_fixture_signs_headers_for_real_services(fit: Fit) -> None:
    codec = HeaderCodec("fixture-secret-0123456789")
    fit.fail("ratings", kind="delay", delay=0.2)
    signed = codec.verify(fit.headers(codec, audience="ratings")["x-stoic-fit"], service="ratings")
    assert signed.scenarios == (Scenario("fit-1", "ratings", "delay", delay=0.2),)
    assert signed.identity == fit.plan.identity


def test_fit_block_nests_and_unbinds() -> None:
    with Fit() as outer:
        outer.fail("fit-fixture-personalisation")
        with Fit():
            assert home("u1")[1] == "primary"  # the inner block has its own (empty) plan
        assert home("u1")[1] == "popular"
        with pytest.raises(RuntimeError, match="already active"):
            outer.__enter__()
    assert current_plan() is None


def test_plugin_is_registered_for_any_project(tmp_path: Path) -> None:
    """A fresh project gets the fixture from the installed entry point, with no conftest at all."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        from stoic.guard import Dependency, Fallback

        recs = Dependency("recs", timeout=1.0, registry=None, fallbacks=[Fallback.value([], name="empty")])

        def test_survives(fit):
            fit.fail("recs")
            assert recs.execute(lambda: ["r1"]).source == "empty"

        def test_without_fixture_fails_if_fallback_expected():
            assert recs.execute(lambda: ["r1"]).source == "empty"
    """))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    assert "test_without_fixture_fails_if_fallback_expected" in run.stdout
