from __future__ import annotations

import asyncio
import threading
import time

import pytest

from stoic.fit import FailurePlan, RequestIdentity, Scenario, bind, current_plan
from stoic.guard import Dependency, DependencyFailed, Fallback, InjectedFailure, Outcome


def make_dependency(name: str = "personalisation", timeout: float = 1.0) -> Dependency:
    return Dependency(
        name, timeout=timeout, fallbacks=[Fallback.value(["popular"], name="popular")], registry=None
    )


def fetch_rows(user_id: str) -> list[str]:
    return [f"picked-for-{user_id}"]


@pytest.mark.parametrize(("kind", "outcome"), [
    ("error", Outcome.FAILURE), ("timeout", Outcome.TIMEOUT), ("reject", Outcome.REJECTED),
])
def test_each_fault_kind_reaches_the_fallback_only_inside_the_plan(kind: str, outcome: Outcome) -> None:
    dependency = make_dependency()
    calls: list[str] = []

    def primary(user_id: str) -> list[str]:
        calls.append(user_id)
        return fetch_rows(user_id)

    plan = FailurePlan([Scenario("s", "personalisation", kind)], RequestIdentity("req-1"))
    with bind(plan):
        result = dependency.execute(primary, "u1")
    assert (result.source, result.value, result.outcome) == ("popular", ["popular"], outcome)
    assert calls == []  # the primary never ran
    assert [(i.dependency, i.scenario, i.kind) for i in plan.injections] == [("personalisation", "s", kind)]
    after = dependency.execute(primary, "u1")
    assert (after.source, after.value) == ("primary", ["picked-for-u1"])
    assert calls == ["u1"]


def test_delay_slows_the_primary() -> None:
    dependency = make_dependency(timeout=1.0)
    with bind(FailurePlan([Scenario("slow", "personalisation", "delay", delay=0.15)])):
        started = time.perf_counter()
        result = dependency.execute(fetch_rows, "u1")
    assert time.perf_counter() - started >= 0.14
    assert (result.source, result.value) == ("primary", ["picked-for-u1"])


async def test_delay_counts_against_the_deadline() -> None:
    too_slow = make_dependency("ratings", timeout=0.05)

    async def fetch(user_id: str) -> list[str]:
        return [user_id]

    with bind(FailurePlan([Scenario("slow", "ratings", "delay", delay=0.5)])):
        started = time.perf_counter()
        late = await too_slow.aexecute(fetch, "u1")
    assert time.perf_counter() - started < 0.4  # cancelled at the deadline, not after the whole delay
    assert (late.source, late.outcome) == ("popular", Outcome.TIMEOUT)


def test_without_fallback_the_caller_sees_the_injected_failure() -> None:
    bare = Dependency("bare", timeout=1.0, registry=None)
    with bind(FailurePlan([Scenario("s", "bare")])), pytest.raises(DependencyFailed) as info:
        bare.call(fetch_rows, "u1")
    assert isinstance(info.value.causes[0][1], InjectedFailure)
    assert "injected by scenario s" in str(info.value)


def test_only_the_bound_thread_sees_the_plan() -> None:
    dependency = make_dependency()
    plan = FailurePlan([Scenario("s", "personalisation")])
    inside, outside = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def tagged() -> None:
        with bind(plan):
            inside.set()
            outside.wait(5)
            seen["tagged"] = dependency.execute(fetch_rows, "u1").source

    def untagged() -> None:
        inside.wait(5)  # runs while the other thread has its plan bound
        seen["untagged"] = dependency.execute(fetch_rows, "u2").source
        outside.set()

    threads = [threading.Thread(target=tagged), threading.Thread(target=untagged)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"tagged": "popular", "untagged": "primary"}


async def test_only_the_bound_task_sees_the_plan() -> None:
    dependency = make_dependency()

    async def fetch(user_id: str) -> list[str]:
        await asyncio.sleep(0.01)
        return [user_id]

    async def request(user_id: str, failing: bool) -> str:
        scenarios = [Scenario("s", "personalisation")] if failing else []
        with bind(FailurePlan(scenarios, RequestIdentity(f"req-{user_id}", user_id))):
            assert current_plan() is not None
            return (await dependency.aexecute(fetch, user_id)).source

    sources = await asyncio.gather(*(request(f"u{i}", failing=i % 2 == 0) for i in range(10)))
    assert sources == ["popular", "primary"] * 5
    assert current_plan() is None


def test_plan_decides_targeting_once_for_its_identity() -> None:
    dependency = make_dependency()
    scenario = Scenario("tv-only", "personalisation", devices=["tv"], user_ids=["u1"])
    with bind(FailurePlan([scenario], RequestIdentity("r", "u1", "tv"))):
        assert dependency.execute(fetch_rows, "u1").source == "popular"
    with bind(FailurePlan([scenario], RequestIdentity("r", "u1", "web"))):
        assert dependency.execute(fetch_rows, "u1").source == "primary"
    with bind(FailurePlan([scenario], RequestIdentity("r", "u9", "tv"))):
        assert dependency.execute(fetch_rows, "u9").source == "primary"


def test_expired_scenarios_and_plans_stop_injecting() -> None:
    now = [100.0]
    plan = FailurePlan(
        [Scenario("brief", "a", expires_at=110.0), Scenario("longer", "b")],
        expires_at=120.0,
        clock=lambda: now[0],
    )
    assert plan.fault_for("a") is not None and plan.fault_for("b") is not None
    now[0] = 110.0
    assert plan.fault_for("a") is None and plan.fault_for("b") is not None
    now[0] = 120.0
    assert plan.fault_for("b") is None and plan.matching() == ()


def test_scenarios_are_bounded_and_replaced_by_name() -> None:
    plan = FailurePlan()
    plan.add(Scenario("s", "a"))
    plan.add(Scenario("s", "b"))
    assert [s.dependencies for s in plan.scenarios] == [("b",)]
    for i in range(63):
        plan.add(Scenario(f"s{i}", "a"))
    with pytest.raises(ValueError, match="scenarios: a plan holds at most 64"):
        plan.add(Scenario("one-too-many", "a"))
    with pytest.raises(TypeError, match="scenario must be a Scenario"):
        plan.add("s")  # type: ignore[arg-type]
