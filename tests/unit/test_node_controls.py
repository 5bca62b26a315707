"""A volunteer's controls over its node: the pause file, the duty cycle's rests, the hours window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from node.controls import Controls, Hours, pause, resume


def test_pause_and_resume_go_through_a_file_in_the_work_directory(tmp_path: Path) -> None:
    controls = Controls(tmp_path / "node")
    assert not controls.paused()
    pause(tmp_path / "node", reason="lunch")
    assert controls.paused()
    assert resume(tmp_path / "node") is True and not controls.paused()
    assert resume(tmp_path / "node") is False  # resuming a running node says so


@pytest.mark.parametrize(("duty", "rest"), [(1.0, 0.0), (0.5, 2.0), (0.25, 6.0)])
def test_the_rest_after_a_step_keeps_training_to_the_duty_cycle(duty: float, rest: float) -> None:
    assert Controls(Path("."), duty_cycle=duty).rest_after(2.0) == pytest.approx(rest)


@pytest.mark.parametrize("duty", [0.0, -0.5, 1.5])
def test_a_duty_cycle_outside_zero_to_one_is_refused(duty: float) -> None:
    with pytest.raises(ValueError, match="duty cycle"):
        Controls(Path("."), duty_cycle=duty)


def test_hours_windows_may_wrap_midnight() -> None:
    night, day = Hours.parse("22-7"), Hours.parse("9-17")
    assert [h for h in range(24) if night.contains(h)] == [0, 1, 2, 3, 4, 5, 6, 22, 23]
    assert [h for h in range(24) if day.contains(h)] == list(range(9, 17))
    assert Hours.parse("0-24").contains(23) and str(night) == "22-7"
    controls = Controls(Path("."), hours=day)
    assert controls.outside_hours(dt.datetime(2026, 12, 1, 8, 59)) and not controls.outside_hours(
        dt.datetime(2026, 12, 1, 9, 0)
    )
    assert not Controls(Path(".")).outside_hours()  # no window: always within


@pytest.mark.parametrize("text", ["22", "a-b", "25-3", "7-7", "0-0", "-1-5", "3-4-5"])
def test_malformed_hours_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="hours|window"):
        Hours.parse(text)
