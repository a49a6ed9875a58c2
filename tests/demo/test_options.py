"""Bad input gets a clear error naming the field: options, CLI flags, strikes, the load pattern."""

from __future__ import annotations

from pathlib import Path

import pytest

from stoic.cli import main
from stoic.demo import DailyPattern, DemoOptions, Strike


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("duration", 5, "duration: must be 20..3600"),
        ("seed", -1, "seed: must be an integer"),
        ("dashboard", 70000, "dashboard: must be a TCP port"),
        ("peak", 0, "peak: must be 0.5..100"),
        ("members", 3, "members: must be an integer in 10..100000"),
        ("start_hour", 24, "start_hour: must be a clock hour"),
    ],
)
def test_options_name_the_field(field: str, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        DemoOptions(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--duration", "5"], "--duration must be in 20..3600"),
        (["--duration", "soon"], "--duration must be a number"),
        (["--seed", "1.5"], "--seed must be an integer"),
        (["--dashboard", "0"], "--dashboard must be in 1..65535"),
        (["--peak", "1000"], "--peak must be in 0.5..100"),
    ],
)
def test_cli_flags_are_checked_before_anything_starts(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *argv])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_a_busy_dashboard_port_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["demo", "--duration", "20", "--dashboard", str(port), "--out", str(tmp_path)])
    assert code == 2
    assert f"dashboard: port {port} is not free" in capsys.readouterr().err
    assert not (tmp_path / "platform").exists()  # refused before a single process started


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"kind": "chaos-squirrel", "at": 0.1, "target": "x"}, "strike.kind: must be one of"),
        ({"kind": "chaos-kong", "at": 1.5, "target": "us-east"}, r"strike.at: must be a share"),
        ({"kind": "fit", "at": 0.1, "target": "manifest", "percent": 0}, "strike.percent"),
    ],
)
def test_strikes_are_validated(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Strike(**kwargs)  # type: ignore[arg-type]


def test_daily_pattern_peaks_in_the_evening_and_dips_before_dawn() -> None:
    day = DailyPattern(duration=240.0, peak=10.0, start_hour=0.0)
    at = {hour: day.rate(hour * 10.0) for hour in range(24)}
    assert max(at, key=at.__getitem__) == 21
    assert min(at, key=at.__getitem__) in (4, 5)  # before dawn
    assert at[21] == pytest.approx(10.0)
    assert at[4] < 0.15 * at[21]
    with pytest.raises(ValueError, match="peak: must be in"):
        DailyPattern(duration=60.0, peak=0.0)


def test_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.txt"
    target.write_text("not a directory")
    assert main(["demo", "--duration", "20", "--out", str(target)]) == 2
    assert f"out: {target} exists and is not a directory" in capsys.readouterr().err


def test_the_week_before_the_run_follows_the_daily_pattern() -> None:
    # The arrivals Signals learns before the run are drawn as the live ones are: in time order,
    # before the run, from the members' home regions, as many as the pattern's rate says.
    from stoic.demo.viewers import Viewers

    pattern = DailyPattern(120.0, peak=12.0)
    viewers = Viewers({}, {"us-east": ("us-east-1a",), "eu-west": ("eu-west-1a",)}, pattern, seed=4)
    week = list(viewers.earlier_days(7))
    times = [at for at, _ in week]
    assert times == sorted(times) and times[0] >= -7 * 120.0 and times[-1] < 0.0
    assert {region for _, region in week} == {"us-east", "eu-west"}
    expected = 7 * sum(pattern.rate(i / 10) for i in range(1200)) / 10  # the rate's integral
    assert abs(len(week) - expected) < 4 * expected**0.5
    with pytest.raises(ValueError, match=r"^days: must be in \[0, 28\], got 40$"):
        next(viewers.earlier_days(40))
