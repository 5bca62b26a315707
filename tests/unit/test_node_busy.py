"""The busy probe: what other programs than this node use of the machine's CPU, and when that holds the node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from node.busy import BusyProbe, CpuReading, others_load_pct, parse_proc_stat, read_cpu

STAT = """cpu  100 20 30 1000 50 5 5 0 0 0
cpu0 50 10 15 500 25 3 2 0 0 0
intr 12345
"""


def test_proc_stat_counts_user_nice_system_irq_softirq_steal_as_busy_and_every_field_in_the_total() -> None:
    busy, total = parse_proc_stat(STAT, ticks_per_s=100)
    assert busy == pytest.approx((100 + 20 + 30 + 5 + 5 + 0) / 100)
    assert total == pytest.approx((100 + 20 + 30 + 1000 + 50 + 5 + 5 + 0) / 100)
    with pytest.raises(ValueError, match="no aggregate cpu line"):
        parse_proc_stat("intr 1\n", 100)


def test_others_load_is_the_machines_busy_time_less_this_process_over_all_cores() -> None:
    before = CpuReading(busy_s=10, total_s=100, own_s=5, at=0)
    # Two cores for 2 s: 4 CPU seconds, 3 of them busy, 1 of those this process's own.
    after = CpuReading(busy_s=13, total_s=104, own_s=6, at=2)
    assert others_load_pct(before, after) == pytest.approx(50.0)
    assert others_load_pct(after, after) == 0.0  # no time passed: no load to speak of
    # This process alone keeps the machine busy: nobody else's load (clamped, never negative).
    assert others_load_pct(before, CpuReading(13, 104, 9, 2)) == 0.0


def scripted(loads: list[float]) -> Iterator[CpuReading]:
    """Readings a second apart on a one-core machine whose other programs run `loads` (percent) in turn."""
    busy, at = 0.0, 0.0
    yield CpuReading(busy, at, 0.0, at)
    for load in loads:
        busy, at = busy + load / 100, at + 1
        yield CpuReading(busy, at, 0.0, at)


def test_the_probe_samples_a_second_before_its_first_verdict_then_compares_with_its_last_reading() -> None:
    readings = scripted([10, 80, 80, 20])
    slept: list[float] = []
    probe = BusyProbe(50, read=lambda: next(readings), sleep=slept.append)
    assert probe.busy() is False and slept == [1.0] and probe.load_pct == pytest.approx(10)
    assert probe.busy() is True and probe.load_pct == pytest.approx(80)
    assert probe.busy() is True
    assert probe.busy() is False and probe.load_pct == pytest.approx(20) and slept == [1.0]


def test_a_verdict_stands_until_a_second_has_passed_however_often_it_is_asked() -> None:
    readings = iter([CpuReading(0, 0, 0, 0), CpuReading(0.9, 1, 0, 1), CpuReading(0.9, 1.2, 0, 1.2)])
    probe = BusyProbe(50, read=lambda: next(readings), sleep=lambda _: None)
    assert probe.busy() is True
    assert probe.busy() is True and probe.load_pct == pytest.approx(90)  # 0.2 s later: the same verdict


@pytest.mark.parametrize("threshold", [-1, 100, 150])
def test_a_threshold_outside_zero_to_a_hundred_percent_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="busy threshold"):
        BusyProbe(threshold)


def test_other_programs_spinning_on_every_core_read_as_load() -> None:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)  # started and spinning
        before = read_cpu()
        time.sleep(1.5)
        after = read_cpu()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert others_load_pct(before, after) > 60
